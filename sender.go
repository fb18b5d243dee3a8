package webhook

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"go.uber.org/zap"

	"github.com/hooksmith/webhook/store"
)

// Sender signs, queues, delivers, retries and records webhooks. Build one with NewSender,
// call Send from anywhere (it is safe for concurrent use), and Close it on shutdown.
//
// Inside, a delivery goes one way through named stages (see docs/architecture.md):
// Send's admission stores it, the dispatcher claims it from the store, a worker makes
// the attempt (attempter), decide says what the result means, and the recorder writes it
// back. The Sender wires them together and holds the public methods.
type Sender struct {
	cfg    config
	id     string // lease owner in the store
	store  Store
	reg    *registry
	health *healthTable
	retry  RetryPolicy
	log    *zap.Logger
	clock  Clock

	admit *admission
	disp  *dispatcher
	att   *attempter
	rec   *recorder
	work  chan Delivery // claimed deliveries, from the dispatcher to the workers

	ownTransport bool // the Sender built its transport and closes its idle connections
	closed       atomic.Bool
	stop         chan struct{}      // closed by Close: stop claiming and waiting
	baseCtx      context.Context    // ends when Close gives up waiting
	cancel       context.CancelFunc // aborts in-flight attempts
	loops        sync.WaitGroup     // dispatcher, admission poll and pruner
	workers      sync.WaitGroup
	closeOnce    sync.Once
}

// NewSender returns a running Sender configured by opts. It validates every option and
// reports every problem found, each wrapping ErrInvalidOption, or else the first
// endpoint that is not valid (wrapping ErrInvalidEndpoint).
func NewSender(opts ...Option) (*Sender, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if o != nil {
			o.apply(&cfg)
		}
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	reg := newRegistry(cfg.versionHeader, cfg.version, cfg.httpsOnly)
	if err := reg.add(cfg.endpoints, false); err != nil {
		return nil, err
	}
	if cfg.store == nil {
		cfg.store = NewMemoryStore(cfg.queueCapacity)
	}
	defaultShare := cfg.endpointLimit == 0
	if defaultShare {
		cfg.endpointLimit = (cfg.workers + 1) / 2
	}
	ownTransport := cfg.transport == nil
	if ownTransport {
		cfg.transport = defaultTransport(cfg)
	}
	s := &Sender{
		cfg: cfg, id: newID("snd_", time.Now()), store: cfg.store, reg: reg, retry: cfg.retry.withDefaults(),
		log: cfg.logger, clock: cfg.clock, ownTransport: ownTransport, stop: make(chan struct{}),
		health: newHealthTable(breakerPolicy{threshold: cfg.breakerAt, cooldown: cfg.breaker[0],
			maxCooldown: cfg.breaker[1], disableAfter: cfg.disableAfter}, cfg.lease),
		work: make(chan Delivery, cfg.workers), // the claim-ahead buffer: as large as the pool
	}
	s.baseCtx, s.cancel = context.WithCancel(context.Background())
	s.att = &attempter{transport: cfg.transport, signer: cfg.signer, timeout: cfg.timeout,
		drainBytes: cfg.drainBytes, recordBytes: cfg.recordBytes, version: cfg.version,
		versionHeader: http.CanonicalHeaderKey(cfg.versionHeader), defaultVersion: []string{cfg.version},
		userAgent: []string{cfg.userAgent}}
	s.admit = &admission{store: cfg.store, failFast: cfg.failFast, room: make(chan struct{}, 1), stop: s.stop}
	s.disp = &dispatcher{store: cfg.store, reg: reg, health: s.health, clock: cfg.clock, log: cfg.logger,
		owner: s.id, lease: cfg.lease, poll: cfg.poll, workers: cfg.workers, prefetch: cap(s.work),
		endpointLimit: cfg.endpointLimit, defaultShare: defaultShare, work: s.work,
		wakeC: make(chan struct{}, 1), freedC: make(chan struct{}, 1), inflight: map[string]int{}}
	s.rec = newRecorder(cfg.store, s.admit, s.disp, cfg.hooks, cfg.logger, cfg.workers)
	s.workers.Add(cfg.workers)
	for range cfg.workers {
		go s.worker()
	}
	s.loops.Add(3)
	go func() {
		defer s.loops.Done()
		s.disp.run(s.baseCtx, s.stop)
	}()
	go func() {
		defer s.loops.Done()
		s.admit.poll(cfg.clock, cfg.poll)
	}()
	go s.prune()
	return s, nil
}

// defaultTransport is go-retryablehttp's pooled transport (keep-alive, HTTP/2 where the
// server offers it) with an idle pool sized to the workers, so every worker can keep a
// warm connection to a hot endpoint; its dialer runs the destination guard on every
// resolved address, and TLS below 1.2 is refused.
func defaultTransport(cfg config) http.RoundTripper {
	t, ok := retryablehttp.NewClient().HTTPClient.Transport.(*http.Transport)
	if !ok {
		t = http.DefaultTransport.(*http.Transport).Clone()
	}
	t.MaxIdleConnsPerHost = cfg.workers
	t.MaxIdleConns = max(t.MaxIdleConns, 4*cfg.workers)
	t.Proxy = cfg.proxy
	// No transparent gzip: a response body is only recorded (its first bytes, for
	// debugging), and asking for gzip costs a header map per request.
	t.DisableCompression = true
	guard := cfg.guard
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, ControlContext: guard.control}
	t.DialContext = dialer.DialContext
	if t.TLSClientConfig == nil {
		t.TLSClientConfig = &tls.Config{}
	}
	t.TLSClientConfig.MinVersion = tls.VersionTLS12
	return t
}

// ID returns the Sender's identity, the lease owner it records in the store.
func (s *Sender) ID() string { return s.id }

// Send fans ev out to every enabled endpoint whose EventTypes filter matches its type and
// whose version matches its version, stores one pending delivery per endpoint, and
// returns the delivery IDs, in endpoint ID order. Once Send returns nil, the deliveries
// are in the store (durable, if the store is) and will be attempted. An event no endpoint
// subscribes to returns no IDs and no error.
//
// When the store is full, Send waits for room until ctx is done, or fails at once with
// ErrQueueFull under WithFailFast. Invalid events are rejected with an error wrapping
// ErrInvalidEvent and nothing is stored.
func (s *Sender) Send(ctx context.Context, ev Event) ([]string, error) {
	return s.send(ctx, ev, nil)
}

// SendTo sends ev to the named endpoints only, whatever their EventTypes and Version.
// Each must exist (ErrEndpointNotFound) and be enabled (ErrEndpointDisabled). It is
// otherwise Send.
func (s *Sender) SendTo(ctx context.Context, ev Event, endpointIDs ...string) ([]string, error) {
	if len(endpointIDs) == 0 {
		return nil, fmt.Errorf("%w: SendTo needs at least one endpoint ID", ErrEndpointNotFound)
	}
	return s.send(ctx, ev, endpointIDs)
}

// SendTx is Send inside the caller's own database transaction (the transactional
// outbox): the deliveries are written with tx and exist only if tx commits, so an event
// is sent if and only if the caller's change that caused it is committed. The store must
// implement store.TxStore (the PostgreSQL store does; tx is then a pgx.Tx). Once tx commits,
// any Sender on the store picks the deliveries up, woken by the store's notification or,
// failing that, within the poll interval.
func (s *Sender) SendTx(ctx context.Context, tx any, ev Event) ([]string, error) {
	if _, ok := s.store.(store.TxStore); !ok {
		return nil, fmt.Errorf("%w: SendTx needs a store that implements store.TxStore (such as the PostgreSQL store); this one is %T", ErrInvalidOption, s.store)
	}
	if tx == nil {
		return nil, fmt.Errorf("%w: SendTx with a nil transaction", ErrInvalidOption)
	}
	return s.sendWith(ctx, ev, nil, tx)
}

func (s *Sender) send(ctx context.Context, ev Event, only []string) ([]string, error) {
	return s.sendWith(ctx, ev, only, nil)
}

// sendWith is Send's admission: it validates ev, builds its envelope once, fans it out to
// its endpoints and stores one delivery each, in tx when given.
func (s *Sender) sendWith(ctx context.Context, ev Event, only []string, tx any) ([]string, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	now := s.clock.Now()
	ev, err := ev.normalize(now, s.cfg.version)
	if err != nil {
		return nil, err
	}
	data, err := marshalData(ev.Data)
	if err != nil {
		return nil, err
	}
	body := appendEnvelope(make([]byte, 0, len(data)+len(ev.Type)+len(ev.ID)+len(ev.Version)+96), ev, data)
	if len(body) > s.cfg.maxPayload {
		return nil, &ValidationError{Kind: ErrInvalidEvent, ID: ev.ID, Field: "Data", Err: ErrPayloadTooLarge,
			Reason: fmt.Sprintf("the envelope is %d bytes, over the %d byte limit (WithMaxPayloadSize)", len(body), s.cfg.maxPayload)}
	}
	targets, err := s.targets(ev, only)
	if err != nil || len(targets) == 0 {
		return nil, err
	}
	ids := newDeliveryIDs(len(targets), now)
	ds := make([]Delivery, len(targets))
	for i, e := range targets {
		ds[i] = Delivery{ID: ids[i], EventID: ev.ID, EventType: ev.Type, EndpointID: e.ep.ID,
			Version: ev.Version, Body: body, State: StatePending,
			CreatedAt: now, QueuedAt: now, NextAttemptAt: now, UpdatedAt: now}
	}
	if tx != nil {
		// Not claimable before the commit; the store's notification (or the poll) wakes
		// the dispatchers then.
		if err := s.store.(store.TxStore).EnqueueTx(ctx, tx, ds); err != nil {
			return nil, err
		}
		return ids, nil
	}
	if err := s.admit.enqueue(ctx, ds); err != nil {
		return nil, err
	}
	s.disp.wake()
	return ids, nil
}

// targets returns the endpoints ev goes to.
func (s *Sender) targets(ev Event, only []string) ([]*endpointEntry, error) {
	var out []*endpointEntry
	if only != nil {
		for i, id := range only {
			if slices.Contains(only[:i], id) {
				continue // named twice: still one delivery
			}
			e, ok := s.reg.get(id)
			switch {
			case !ok:
				return nil, fmt.Errorf("%w: %q", ErrEndpointNotFound, id)
			case e.ep.Disabled:
				return nil, fmt.Errorf("%w: %q; enable it with EnableEndpoint", ErrEndpointDisabled, id)
			}
			out = append(out, e)
		}
	} else {
		out = s.reg.route(ev.Type, ev.Version)
	}
	if len(out) > s.cfg.maxFanout {
		return nil, &ValidationError{Kind: ErrInvalidEvent, ID: ev.ID, Field: "Type",
			Reason: fmt.Sprintf("matches %d endpoints, over the limit of %d (WithMaxEndpointsPerEvent)", len(out), s.cfg.maxFanout)}
	}
	return out, nil
}

// Close stops accepting events, lets in-flight attempts finish until ctx is done (then
// aborts them; they are recorded and retried later), and returns once every goroutine
// the Sender started has exited. Undelivered deliveries stay in the store: with a
// durable store, the next Sender delivers them. Close does not close the store. It is
// safe to call more than once.
func (s *Sender) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.stop)
		s.loops.Wait()
		close(s.work)
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.workers.Wait()
		s.rec.close()
		if s.ownTransport {
			if t, ok := s.cfg.transport.(interface{ CloseIdleConnections() }); ok {
				t.CloseIdleConnections() // its keep-alive connections die with it
			}
		}
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.cancel()
		<-done
		return ctx.Err()
	}
}

// prune deletes finished deliveries past their retention, every pruneInterval, and has
// the health table forget what no attempt in flight can still refer to.
func (s *Sender) prune() {
	defer s.loops.Done()
	for {
		t := s.clock.NewTimerAt(s.clock.Now().Add(pruneInterval))
		select {
		case <-s.stop:
			t.Stop()
			return
		case <-t.C():
		}
		now := s.clock.Now()
		s.health.sweep(now)
		if s.cfg.retention < 0 && s.cfg.failedRetention < 0 {
			continue
		}
		var p store.PruneParams
		if s.cfg.retention > 0 {
			p.SucceededBefore = now.Add(-s.cfg.retention)
		}
		if s.cfg.failedRetention > 0 {
			p.FailedBefore = now.Add(-s.cfg.failedRetention)
		}
		n, err := s.store.Prune(s.baseCtx, p)
		if err != nil {
			s.log.Error("webhook: pruning finished deliveries failed", zap.Error(err))
		} else if n > 0 {
			s.log.Debug("webhook: pruned finished deliveries", zap.Int("count", n))
		}
	}
}

// AddEndpoint registers endpoints, all or none. It fails with ErrEndpointExists for an
// ID already registered, or a *ValidationError. Each starts in good health. Safe for
// concurrent use.
func (s *Sender) AddEndpoint(eps ...Endpoint) error {
	if err := s.reg.add(eps, false); err != nil {
		return err
	}
	for _, ep := range eps {
		s.resetHealth(ep.ID)
	}
	s.disp.wake()
	return nil
}

// UpdateEndpoint replaces registered endpoints (matched by ID), all or none. Pending
// deliveries use the new URL, secrets and headers on their next attempt. An endpoint
// given a new URL, secret or headers starts in good health again: what was learnt of the
// old target does not hold for the new one.
func (s *Sender) UpdateEndpoint(eps ...Endpoint) error {
	before := make(map[string]uint64, len(eps))
	for _, ep := range eps {
		if e, ok := s.reg.get(ep.ID); ok {
			before[ep.ID] = e.epoch
		}
	}
	if err := s.reg.add(eps, true); err != nil {
		return err
	}
	for _, ep := range eps {
		if e, ok := s.reg.get(ep.ID); ok && e.epoch != before[ep.ID] {
			s.resetHealth(ep.ID)
		}
	}
	s.disp.wake()
	return nil
}

// RemoveEndpoint unregisters an endpoint. Its pending deliveries fail (dead-letter) when
// next due, with the reason recorded; add the endpoint again and Retry them to deliver.
func (s *Sender) RemoveEndpoint(id string) error {
	if err := s.reg.remove(id); err != nil {
		return err
	}
	s.resetHealth(id)
	return nil
}

// DisableEndpoint stops new deliveries to an endpoint and holds its pending ones.
func (s *Sender) DisableEndpoint(id string) error {
	_, err := s.reg.setDisabled(id, true, 0)
	return err
}

// EnableEndpoint resumes an endpoint in good health (its circuit closed, any pause
// lifted); its held deliveries are attempted as they fall due. A 410 answered to an
// attempt made before the call does not disable it again.
func (s *Sender) EnableEndpoint(id string) error {
	changed, err := s.reg.setDisabled(id, false, 0)
	if err != nil {
		return err
	}
	if changed {
		s.resetHealth(id)
	}
	s.disp.wake()
	return nil
}

// ResetEndpointHealth returns an endpoint to good health, for when its owner says it
// works again: its circuit closes, its failure count and any Retry-After pause are
// cleared, and the results of attempts already in flight no longer count against it.
// Its pending deliveries are attempted as they fall due. EnableEndpoint, a change of
// its URL, secret or headers, and a manual Retry or RetryFailed do the same.
func (s *Sender) ResetEndpointHealth(id string) error {
	if _, ok := s.reg.get(id); !ok {
		return fmt.Errorf("%w: %q", ErrEndpointNotFound, id)
	}
	s.resetHealth(id)
	s.disp.wake()
	return nil
}

// resetHealth resets an endpoint's health, reporting a circuit it closes.
func (s *Sender) resetHealth(id string) {
	now := s.clock.Now()
	if s.health.reset(id, now) {
		s.circuitChanged(id, EndpointHealth{})
	}
}

// Endpoint returns a registered endpoint, or ErrEndpointNotFound.
func (s *Sender) Endpoint(id string) (Endpoint, error) {
	e, ok := s.reg.get(id)
	if !ok {
		return Endpoint{}, fmt.Errorf("%w: %q", ErrEndpointNotFound, id)
	}
	return e.ep, nil
}

// Endpoints returns every registered endpoint in ID order.
func (s *Sender) Endpoints() []Endpoint {
	all := s.reg.all()
	out := make([]Endpoint, len(all))
	for i, e := range all {
		out[i] = e.ep
	}
	return out
}

// EndpointHealth returns what this Sender knows of an endpoint's recent attempts: its
// circuit breaker state, consecutive failures, and any pause a 429/503 asked for.
func (s *Sender) EndpointHealth(id string) (EndpointHealth, error) {
	if _, ok := s.reg.get(id); !ok {
		return EndpointHealth{}, fmt.Errorf("%w: %q", ErrEndpointNotFound, id)
	}
	return s.health.get(id, s.clock.Now()), nil
}

// Delivery returns one delivery from the store, or an error wrapping ErrNotFound.
func (s *Sender) Delivery(ctx context.Context, id string) (Delivery, error) {
	return s.store.Get(ctx, id)
}

// Deliveries lists deliveries from the store; see ListParams. Failed deliveries (the dead
// letters) are ListParams{State: StateFailed}.
func (s *Sender) Deliveries(ctx context.Context, p ListParams) (ListResult, error) {
	return s.store.List(ctx, p)
}

// Attempts returns a delivery's attempts in order.
func (s *Sender) Attempts(ctx context.Context, deliveryID string) ([]Attempt, error) {
	return s.store.Attempts(ctx, deliveryID)
}

// Retry requeues finished deliveries by ID (a manual retry), all or none, with a fresh
// retry budget, due now. A manual retry says the receiver works again: the endpoints of
// the deliveries requeued start in good health (see ResetEndpointHealth).
func (s *Sender) Retry(ctx context.Context, deliveryIDs ...string) (int, error) {
	if len(deliveryIDs) == 0 {
		return 0, nil
	}
	n, err := s.store.Requeue(ctx, store.RequeueParams{Now: s.clock.Now(), IDs: deliveryIDs})
	if err == nil {
		reset := map[string]bool{}
		for _, id := range deliveryIDs {
			if d, gerr := s.store.Get(ctx, id); gerr == nil && !reset[d.EndpointID] {
				reset[d.EndpointID] = true
				s.resetHealth(d.EndpointID)
			}
		}
	}
	s.disp.wake()
	return n, err
}

// RetryFailed requeues every failed delivery of an endpoint created at or after since,
// and starts the endpoint in good health (see ResetEndpointHealth).
func (s *Sender) RetryFailed(ctx context.Context, endpointID string, since time.Time) (int, error) {
	n, err := s.store.Requeue(ctx, store.RequeueParams{Now: s.clock.Now(), EndpointID: endpointID, Since: since})
	if err == nil {
		s.resetHealth(endpointID)
	}
	s.disp.wake()
	return n, err
}

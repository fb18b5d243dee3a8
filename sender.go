package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/hashicorp/go-retryablehttp"
	"go.uber.org/zap"
)

// ErrEndpointDisabled is returned by SendTo for a disabled endpoint.
var ErrEndpointDisabled = errors.New("webhook: endpoint disabled")

// Sender signs, queues, delivers, retries and records webhooks. Build one with NewSender,
// call Send from anywhere (it is safe for concurrent use), and Close it on shutdown.
type Sender struct {
	cfg   config
	id    string // lease owner in the store
	store Store
	// mem is store when that is a MemoryStore: Send's deliveries go to its
	// enqueueFresh, since their IDs are freshly generated.
	mem    *MemoryStore
	reg    *registry
	retry  RetryPolicy
	log    *zap.Logger
	clock  Clock
	health *healthTable
	// systemClock: clock is SystemClock, so an attempt's times can come from the one
	// reading its start takes (see attempt).
	systemClock bool
	// userAgent is WithUserAgent's value, as a header slice shared by every request.
	userAgent []string
	// ownTransport: the Sender built its transport and closes its idle connections.
	ownTransport bool
	// versionHeader is WithVersionHeader's name in canonical form.
	versionHeader string
	// defaultVersion is WithVersion's value as a header slice shared by every request.
	defaultVersion []string

	closed  atomic.Bool
	wake    chan struct{} // cap 1: new work was enqueued or an endpoint enabled
	room    chan struct{} // cap 1: the baton for one Send waiting for room
	waiting atomic.Int32  // Sends waiting for room
	// roomPoller is set while one waiting Send holds the poll timer for them all.
	roomPoller atomic.Bool
	// roomWoken is set from handing a waiting Send the baton until it takes it (see
	// passRoom).
	roomWoken atomic.Bool
	// testHookRoomWait, if set (by tests only), is called by a Send about to wait for
	// room, saying whether it holds the poll (its timer armed).
	testHookRoomWait func(poller bool)
	stop             chan struct{} // closed by Close: stop claiming and waiting
	// work carries claimed deliveries to the workers. It buffers up to prefetch of them,
	// claimed ahead, so a worker that finishes starts its next attempt at once instead
	// of waiting for the dispatcher to claim again.
	work     chan Delivery
	prefetch int
	// burstClaims is how many deliveries an endpoint without a limit of its own may hold
	// claimed when nothing else is due, and burstRun how many of those may be attempts
	// at once; the rest wait in deferred for one of its attempts to finish. Both 0:
	// no burst (WithEndpointConcurrency was set).
	burstClaims, burstRun int
	running               map[string]int           // attempts running per bursting endpoint; under finMu
	deferred              map[string]*deliveryFIFO // under finMu
	spareDeferred         *deliveryFIFO            // an emptied queue, for reuse; under finMu
	// finished lists the endpoint IDs of attempts done since the dispatcher last looked;
	// freed (cap 1) tells it there are some. One signal covers many finishes, so a busy
	// dispatcher is woken once per claim round, not once per attempt.
	finMu     sync.Mutex
	finished  []string
	freed     chan struct{}
	baseCtx   context.Context
	cancel    context.CancelFunc // aborts in-flight attempts when Close's ctx ends
	loopsDone sync.WaitGroup     // dispatcher and pruner
	workers   sync.WaitGroup
	// records carries results to the recorders, for stores other than the memory store
	// (nil: workers record themselves).
	records   chan recordJob
	recorders sync.WaitGroup
	closeOnce sync.Once
	// closeRecords closes records once every worker is done.
	closeRecords sync.Once
}

// NewSender returns a running Sender configured by opts. It validates every option and
// endpoint and reports all problems found, each wrapping ErrInvalidOption or
// ErrInvalidEndpoint.
func NewSender(opts ...Option) (*Sender, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if o != nil {
			o.apply(&cfg)
		}
	}
	if cfg.lease < cfg.timeout+5*time.Second {
		cfg.fail("lease duration %s must exceed the attempt timeout %s by at least 5s (WithLeaseDuration)", cfg.lease, cfg.timeout)
	}
	if cfg.endpointLimit > cfg.workers {
		cfg.fail("WithEndpointConcurrency(%d) exceeds the worker count %d", cfg.endpointLimit, cfg.workers)
	}
	if cfg.store != nil && cfg.queueCapacity != 0 {
		cfg.fail("WithQueueCapacity applies to the default memory store only; bound the store given to WithStore instead")
	}
	reg := newRegistry(cfg.versionHeader, cfg.version, cfg.httpsOnly)
	if len(cfg.errs) == 0 {
		if err := reg.add(cfg.endpoints, false); err != nil {
			cfg.errs = append(cfg.errs, err)
		}
	}
	if len(cfg.errs) > 0 {
		return nil, errors.Join(cfg.errs...)
	}
	if cfg.store == nil {
		cfg.store = NewMemoryStore(cfg.queueCapacity)
	}
	prefetch := cfg.workers // the claim-ahead buffer: as large as the pool
	burstClaims, burstRun := 0, 0
	if cfg.endpointLimit == 0 {
		cfg.endpointLimit = (cfg.workers + 1) / 2
		if reserve := max(1, cfg.workers/DefaultBurstReserve); cfg.workers > reserve {
			burstClaims, burstRun = cfg.workers+prefetch-reserve, cfg.workers-reserve
		}
	}
	ownTransport := cfg.transport == nil
	if ownTransport {
		cfg.transport = defaultTransport(cfg)
	}
	_, sysClock := cfg.clock.(systemClock)
	s := &Sender{
		cfg:            cfg,
		id:             newID("snd_", time.Now()),
		store:          cfg.store,
		reg:            reg,
		retry:          cfg.retry.withDefaults(),
		log:            cfg.logger,
		clock:          cfg.clock,
		systemClock:    sysClock,
		versionHeader:  http.CanonicalHeaderKey(cfg.versionHeader),
		ownTransport:   ownTransport,
		userAgent:      []string{cfg.userAgent},
		defaultVersion: []string{cfg.version},
		health: newHealthTable(breakerPolicy{threshold: cfg.breakerAt, cooldown: cfg.breaker[0],
			maxCooldown: cfg.breaker[1], disableAfter: cfg.disableAfter}, cfg.lease),
		wake:        make(chan struct{}, 1),
		room:        make(chan struct{}, 1),
		stop:        make(chan struct{}),
		work:        make(chan Delivery, prefetch),
		prefetch:    prefetch,
		burstClaims: burstClaims,
		burstRun:    burstRun,
		running:     make(map[string]int),
		deferred:    make(map[string]*deliveryFIFO),
		freed:       make(chan struct{}, 1),
	}
	s.baseCtx, s.cancel = context.WithCancel(context.Background())
	if m, inMemory := cfg.store.(*MemoryStore); inMemory {
		s.mem = m
	} else {
		s.records = make(chan recordJob, cfg.workers)
		s.recorders.Add(cfg.workers)
		for range cfg.workers {
			go s.recorder()
		}
	}
	s.workers.Add(cfg.workers)
	for range cfg.workers {
		go s.worker()
	}
	s.loopsDone.Add(2)
	go s.dispatch()
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
// implement TxStore (the PostgreSQL store does; tx is then a pgx.Tx). Once tx commits,
// any Sender on the store picks the deliveries up, woken by the store's notification or,
// failing that, within the poll interval.
func (s *Sender) SendTx(ctx context.Context, tx any, ev Event) ([]string, error) {
	if _, ok := s.store.(TxStore); !ok {
		return nil, fmt.Errorf("%w: SendTx needs a store that implements webhook.TxStore (such as the PostgreSQL store); this one is %T", ErrInvalidOption, s.store)
	}
	if tx == nil {
		return nil, fmt.Errorf("%w: SendTx with a nil transaction", ErrInvalidOption)
	}
	return s.sendWith(ctx, ev, nil, tx)
}

func (s *Sender) send(ctx context.Context, ev Event, only []string) ([]string, error) {
	return s.sendWith(ctx, ev, only, nil)
}

// eventIDPlaceholder stands for a generated event ID until the envelope holds one.
const eventIDPlaceholder = "msg_00000000000000000000000000"

// The placeholder is exactly as long as a generated ID: either difference going
// negative does not compile.
const _ = uint(len(eventIDPlaceholder)-len("msg_")-idDigits) + uint(len("msg_")+idDigits-len(eventIDPlaceholder))

func (s *Sender) sendWith(ctx context.Context, ev Event, only []string, tx any) ([]string, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	now := s.clock.Now()
	// An event without an ID gets one generated straight into its envelope, where the
	// placeholder of the same length stands: a string of its own would be one more
	// allocation in every Send.
	genID := ev.ID == ""
	if genID {
		ev.ID = eventIDPlaceholder
	}
	ev, err := ev.normalize(now, s.cfg.version)
	if err != nil {
		return nil, err
	}
	data, err := marshalData(ev.Data)
	if err != nil {
		return nil, err
	}
	body := appendEnvelope(make([]byte, 0, len(data)+len(ev.Type)+len(ev.ID)+len(ev.Version)+96), ev, data)
	if genID {
		const at = len(`{"id":"`)
		appendNewID(body[at:at], "msg_", now) // overwrites the placeholder in place
		ev.ID = unsafe.String(&body[at], len(eventIDPlaceholder))
	}
	if len(body) > s.cfg.maxPayload {
		return nil, &ValidationError{Kind: ErrInvalidEvent, ID: ev.ID, Field: "Data", Err: ErrPayloadTooLarge,
			Reason: fmt.Sprintf("the envelope is %d bytes, over the %d byte limit (WithMaxPayloadSize)", len(body), s.cfg.maxPayload)}
	}
	targets, err := s.targets(ev, only)
	if err != nil {
		return nil, err
	}
	if len(targets) == 0 {
		return nil, nil
	}
	// The usual Send: one delivery into the memory store, which copies what it keeps,
	// so the Delivery (288 bytes) can live on the stack and the ID share an allocation
	// with the returned slice. (Through enqueue the Delivery could not: its other branch
	// hands the slice to an interface.)
	m := s.mem
	one := m != nil && len(targets) == 1 && tx == nil
	var ids []string
	if one {
		ids = newOneDeliveryID(now)
	} else {
		ids = newDeliveryIDs(len(targets), now)
	}
	fill := func(ds []Delivery) {
		eventID := envelopeID(body, ev.ID)
		for i, e := range targets {
			ds[i] = Delivery{
				ID: ids[i], EventID: eventID, EventType: ev.Type, EndpointID: e.ep.ID,
				Version: ev.Version, Body: body, State: StatePending,
				CreatedAt: now, QueuedAt: now, NextAttemptAt: now, UpdatedAt: now,
			}
		}
	}
	if tx != nil {
		ds := make([]Delivery, len(targets))
		fill(ds)
		// Not claimable before the commit; the store's notification (or the poll) wakes
		// the dispatchers then.
		if err := s.store.(TxStore).EnqueueTx(ctx, tx, ds); err != nil {
			return nil, err
		}
		return ids, nil
	}
	if one {
		var d [1]Delivery
		fill(d[:])
		err = s.withRoom(ctx, func() error { return m.enqueueFresh(ctx, d[:]) })
	} else {
		ds := make([]Delivery, len(targets))
		fill(ds)
		err = s.enqueue(ctx, ds)
	}
	if err != nil {
		return nil, err
	}
	s.poke()
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

// enqueue stores ds, waiting for room when the store is full unless fail-fast.
func (s *Sender) enqueue(ctx context.Context, ds []Delivery) error {
	if m := s.mem; m != nil {
		return s.withRoom(ctx, func() error { return m.enqueueFresh(ctx, ds) })
	}
	return s.withRoom(ctx, func() error { return s.store.Enqueue(ctx, ds) })
}

// withRoom calls try, an Enqueue, until it stores or fails for a reason other than a
// full store, waiting for room between tries unless fail-fast.
func (s *Sender) withRoom(ctx context.Context, try func() error) error {
	err := try()
	if !errors.Is(err, ErrQueueFull) || s.cfg.failFast {
		return err
	}
	// Wait for room: this Sender finishing a delivery hands one waiter the baton (and a
	// waiter that gets in passes it on, since more room may remain), so a completion
	// wakes one caller rather than all of them. The poll covers room made by other
	// processes sharing the store. One waiter polls for all (a waiter that gets in
	// passes the baton on, so room found by the poll reaches the others too): at full
	// speed every Send waits, and a timer each, with its channel in the select, cost
	// more than the rest of the wait. A poller that leaves wakes another waiter to take
	// the poll over.
	s.waiting.Add(1)
	poller := false
	var t Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
		if poller {
			s.roomPoller.Store(false)
		}
		s.waiting.Add(-1)
		if poller {
			s.passRoom()
		}
	}()
	for {
		// The first time round, this tries once more now that a finishing delivery
		// will pass the baton: one finishing between the first try and registering as
		// a waiter would otherwise go unseen.
		if err = try(); !errors.Is(err, ErrQueueFull) {
			if err == nil {
				s.passRoomLeft()
			}
			return err
		}
		if !poller {
			poller = s.roomPoller.CompareAndSwap(false, true)
		}
		var tick <-chan time.Time
		if poller {
			if t == nil {
				t = s.clock.NewTimerAt(s.clock.Now().Add(s.cfg.poll))
			}
			tick = t.C()
		}
		if s.testHookRoomWait != nil {
			s.testHookRoomWait(poller)
		}
		select {
		case <-s.room:
			s.roomWoken.Store(false)
		case <-tick:
			t = nil
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrQueueFull, ctx.Err())
		case <-s.stop:
			return ErrClosed
		}
	}
}

// passRoomLeft passes the baton on after a waiter got in, unless the store is known to
// be full again and a waiter holds the poll: at full speed each finished delivery
// admits one waiter, and passing on regardless woke a second one per delivery only to
// find no room and wait again. With no poller, it passes on all the same, so that
// a waiter takes the poll: the one that got in may have been woken to take it over
// from a poller that gave up, and the rest would then wait for room made elsewhere
// with nobody polling.
func (s *Sender) passRoomLeft() {
	if m := s.mem; m != nil && m.capacity > 0 && m.Len() >= m.capacity && s.roomPoller.Load() {
		return
	}
	s.passRoom()
}

// passRoom wakes one caller waiting for room, if any, unless one woken already has yet
// to take the baton. A woken goroutine waits its turn to run, at full speed behind
// every other runnable one, and each delivery finishing meanwhile found the room it
// made still there: waking a waiter for each had every Send park and wake once (1.07
// waits per delivery in the bench's 64-worker throughput mode). With one woken at a
// time, the callers that get in find the room left when they Send again (0.12), and
// the Sender's CPU per delivery fell by about 6% (BenchmarkDeliver). The wait is no
// longer spread evenly: in that mode the median event's time from Send to receiver fell
// and the 99th percentile's rose, the mean being set by the queue's length. The one
// that takes the baton clears roomWoken before it tries, so room made while it was set
// is seen by that try, or else passed on by the next finish.
func (s *Sender) passRoom() {
	if s.waiting.Load() == 0 || !s.roomWoken.CompareAndSwap(false, true) {
		return
	}
	select {
	case s.room <- struct{}{}:
	default: // the baton is in the channel already; whoever takes it clears roomWoken
	}
}

// poke wakes the dispatcher without blocking.
func (s *Sender) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
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
		s.loopsDone.Wait()
		close(s.work)
	})
	done := make(chan struct{})
	go func() {
		s.workers.Wait()
		s.closeRecords.Do(func() {
			if s.records != nil {
				close(s.records)
			}
		})
		s.recorders.Wait()
		if s.ownTransport {
			if t, ok := s.cfg.transport.(interface{ CloseIdleConnections() }); ok {
				t.CloseIdleConnections() // its keep-alive connections die with it
			}
		}
		close(done)
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
	s.poke()
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
	s.poke()
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
	s.poke()
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
	s.poke()
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
	n, err := s.store.Requeue(ctx, RequeueParams{Now: s.clock.Now(), IDs: deliveryIDs})
	if err == nil {
		reset := map[string]bool{}
		for _, id := range deliveryIDs {
			if d, gerr := s.store.Get(ctx, id); gerr == nil && !reset[d.EndpointID] {
				reset[d.EndpointID] = true
				s.resetHealth(d.EndpointID)
			}
		}
	}
	s.poke()
	return n, err
}

// RetryFailed requeues every failed delivery of an endpoint created at or after since,
// and starts the endpoint in good health (see ResetEndpointHealth).
func (s *Sender) RetryFailed(ctx context.Context, endpointID string, since time.Time) (int, error) {
	n, err := s.store.Requeue(ctx, RequeueParams{Now: s.clock.Now(), EndpointID: endpointID, Since: since})
	if err == nil {
		s.resetHealth(endpointID)
	}
	s.poke()
	return n, err
}

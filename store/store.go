// Package store is the contract between a hooksmith Sender and the store that keeps its
// deliveries: the Store interface, the types it speaks, and the helpers every
// implementation shares so that they agree on what each call means. Users of the Sender
// meet the few types they see (Delivery, Attempt, State, ListParams) through aliases in
// package webhook; this package is for those who write a store. Package storetest is
// its conformance suite.
package store

import (
	"context"
	"errors"
	"slices"
	"time"
)

// Sentinel errors a store returns, matched with errors.Is. Package webhook re-exports
// those its users branch on.
var (
	// ErrQueueFull is returned by Enqueue when a bounded store holds as many unfinished
	// deliveries as it may.
	ErrQueueFull = errors.New("webhook: queue full")
	// ErrNotFound reports a delivery ID the store does not hold.
	ErrNotFound = errors.New("webhook: delivery not found")
	// ErrLeaseLost is returned by Record when the delivery's lease expired and was
	// claimed by someone else; the attempt's result is then discarded.
	ErrLeaseLost = errors.New("webhook: delivery lease lost")
	// ErrDuplicateDelivery is returned by Enqueue when a delivery's ID is already stored,
	// or appears twice in the batch; nothing of the batch is stored.
	ErrDuplicateDelivery = errors.New("webhook: duplicate delivery ID")
	// ErrInvalidState reports an operation that does not apply to the delivery's current
	// state (for example requeueing a delivery that is in flight).
	ErrInvalidState = errors.New("webhook: delivery in wrong state")
)

// State is where a Delivery is in its life.
type State string

// Delivery states. A delivery starts pending, is in flight while leased to a worker, and
// ends succeeded or failed (dead-lettered). Requeue moves a finished delivery back to
// pending.
const (
	StatePending   State = "pending"
	StateInFlight  State = "in_flight"
	StateSucceeded State = "succeeded"
	StateFailed    State = "failed"
)

// Finished reports whether s is a final state (succeeded or failed).
func (s State) Finished() bool { return s == StateSucceeded || s == StateFailed }

// Delivery is one event on its way to one endpoint. It holds the endpoint's ID, never its
// URL or secrets: those are resolved when each attempt is made, so URL changes and secret
// rotation apply to deliveries already queued.
type Delivery struct {
	ID         string // "dlv_..." unique, time-sortable
	EventID    string // the webhook-id sent with every attempt
	EventType  string
	EndpointID string
	Version    string
	Body       []byte // the envelope, sent unchanged on every attempt; must not be modified

	State State
	// Attempts counts the attempts made since the delivery was last (re)queued; the retry
	// schedule and MaxAttempts apply to it. Every attempt ever made is kept in the store's
	// attempt log (Store.Attempts).
	Attempts      int
	CreatedAt     time.Time
	QueuedAt      time.Time // when it was last (re)queued; MaxAge counts from here
	NextAttemptAt time.Time // when it is next due; unchanged by Claim
	UpdatedAt     time.Time
	LastStatus    int    // the last attempt's HTTP status, 0 if none
	LastError     string // the last attempt's error, redacted; empty on success

	LeaseOwner     string    // the Sender holding it while in flight
	LeaseExpiresAt time.Time // after this another claimer may take it over
}

// Apply changes d as Store.Record must for p (the attempt log is the store's to append):
// an attempt is counted and gives LastStatus and LastError (without one, a Reason becomes
// LastError), the state becomes p.State, the lease is released, UpdatedAt becomes p.Now,
// and a pending delivery is next due at p.NextAttemptAt. Stores and the Sender share it so
// they agree on what a record means.
func (d *Delivery) Apply(p RecordParams) {
	if a := p.Attempt; a != nil {
		d.Attempts++
		d.LastStatus = a.StatusCode
		d.LastError = a.Error
	} else if p.Reason != "" {
		d.LastError = p.Reason
	}
	d.State = p.State
	d.LeaseOwner = ""
	d.LeaseExpiresAt = time.Time{}
	d.UpdatedAt = p.Now
	if p.State == StatePending {
		d.NextAttemptAt = p.NextAttemptAt
	}
}

// Requeue changes a finished delivery as Store.Requeue must: pending again, due at now,
// with a fresh attempt budget (Attempts 0, QueuedAt now).
func (d *Delivery) Requeue(now time.Time) {
	d.State = StatePending
	d.Attempts = 0
	d.QueuedAt = now
	d.NextAttemptAt = now
	d.UpdatedAt = now
}

// Attempt is the record of one HTTP request made for a delivery.
type Attempt struct {
	DeliveryID string
	// Number is the attempt's 1-based position in the delivery's whole history, across
	// requeues. The store assigns it.
	Number     int
	StartedAt  time.Time
	Duration   time.Duration
	StatusCode int    // 0 when no response was received
	Error      string // why it failed, redacted of URL credentials and query; empty on 2xx
	// ResponseBody holds the first bytes of the response body (see
	// DefaultResponseRecordBytes).
	ResponseBody []byte
}

// ClaimParams are the arguments of Store.Claim.
type ClaimParams struct {
	Now   time.Time
	Limit int    // at most this many deliveries
	Owner string // the claiming Sender's ID, checked again by Record
	// LeaseUntil is when the claim lapses. A delivery still in flight after it may be
	// claimed again by anyone: this is what recovers deliveries from crashed senders.
	LeaseUntil time.Time
	// ExcludeEndpoints lists endpoints that cannot take work now (disabled, at their
	// concurrency limit); their deliveries are left where they are.
	ExcludeEndpoints []string
	// MaxPerEndpoint caps how many deliveries of any one endpoint this claim returns, so a
	// backlog for one endpoint cannot fill every free worker. Zero means no cap.
	MaxPerEndpoint int
	// Ordered lists endpoints whose deliveries go strictly one after another (FIFO, see
	// Endpoint.Ordered): for each, the claim returns at most the endpoint's oldest
	// unfinished delivery (lowest ID), and only if it is pending and due. While that
	// delivery is in flight or waiting for a retry, the endpoint's later deliveries are
	// not claimed. (An expired lease of it may be claimed again as usual.)
	Ordered []string
}

// RecordParams are the arguments of Store.Record: the result of one attempt and the state
// it leaves the delivery in.
type RecordParams struct {
	DeliveryID string
	Owner      string // must still hold the lease, or Record fails with ErrLeaseLost
	Now        time.Time
	// Attempt is appended to the delivery's attempt log and counted in Attempts. Nil
	// releases the delivery without counting an attempt (nothing was sent).
	Attempt *Attempt
	// Reason becomes LastError when Attempt is nil and State is StateFailed (for
	// example "endpoint removed"); it must be redacted like Attempt.Error.
	Reason string
	// State is StateSucceeded, StateFailed, or StatePending to retry at NextAttemptAt.
	State         State
	NextAttemptAt time.Time
}

// ListParams filter Store.List. Zero fields do not filter.
type ListParams struct {
	EndpointID    string
	EventID       string
	State         State
	CreatedAfter  time.Time // inclusive
	CreatedBefore time.Time // exclusive
	// Cursor continues a previous listing: pass the previous ListResult.Next.
	Cursor string
	// Limit caps the page size. Zero means DefaultListLimit.
	Limit int
}

// DefaultListLimit is the page size of List when ListParams.Limit is zero.
const DefaultListLimit = 100

// ListResult is one page of deliveries in ID (creation) order.
type ListResult struct {
	Deliveries []Delivery
	// Next is the cursor of the following page, empty on the last page.
	Next string
}

// RequeueParams select deliveries for Store.Requeue: either IDs, or the failed deliveries
// of EndpointID created at or after Since.
type RequeueParams struct {
	Now        time.Time
	IDs        []string
	EndpointID string
	Since      time.Time
}

// PruneParams select finished deliveries for deletion, with their attempts.
type PruneParams struct {
	SucceededBefore time.Time // zero keeps every succeeded delivery
	FailedBefore    time.Time // zero keeps every failed delivery
}

// Store owns delivery state. The Sender is its only writer in normal operation; several
// Senders (in one or several processes) may share one durable store, coordinating only
// through leases. All methods must be safe for concurrent use, and every multi-row write
// must be atomic.
type Store interface {
	// Enqueue stores new pending deliveries, all or none. When the store is bounded and
	// full it returns an error wrapping ErrQueueFull and stores nothing. A durable store
	// returns only once the deliveries are durable.
	Enqueue(ctx context.Context, deliveries []Delivery) error
	// Claim leases up to Limit due deliveries to Owner: pending ones whose NextAttemptAt
	// is not after Now, and in-flight ones whose lease expired, earliest due first (ties,
	// and the order between the two kinds, are the store's choice). Claimed deliveries
	// are returned in flight, with LeaseOwner and LeaseExpiresAt set. No delivery is
	// returned to two claimers while its lease is live.
	Claim(ctx context.Context, p ClaimParams) ([]Delivery, error)
	// Record stores an attempt's result atomically with the delivery's new state and
	// releases the lease. ErrLeaseLost when the delivery is not in flight for Owner (it
	// finished, or another owner claimed it after the lease expired; an expired lease
	// nobody took over still counts as Owner's); ErrNotFound when the delivery is gone.
	Record(ctx context.Context, p RecordParams) error
	// Get returns one delivery, or ErrNotFound.
	Get(ctx context.Context, id string) (Delivery, error)
	// List returns deliveries matching p in ID order, one page at a time.
	List(ctx context.Context, p ListParams) (ListResult, error)
	// Attempts returns a delivery's attempts in order, or ErrNotFound.
	Attempts(ctx context.Context, deliveryID string) ([]Attempt, error)
	// Requeue makes finished deliveries pending again, due at Now, with Attempts reset.
	// A bounded store's capacity does not apply: a manual retry is never refused.
	// By IDs: each must exist (ErrNotFound) and not be pending or in flight
	// (ErrInvalidState); all or none. By endpoint: every failed delivery of the endpoint
	// created at or after Since. It returns how many were requeued.
	Requeue(ctx context.Context, p RequeueParams) (int, error)
	// NextDue returns the earliest time a delivery not of the excluded endpoints becomes
	// claimable (a pending NextAttemptAt or an in-flight lease expiry), or the zero time
	// when there is none.
	NextDue(ctx context.Context, excludeEndpoints []string) (time.Time, error)
	// Prune deletes finished deliveries (and their attempts) last updated before the
	// given times, and returns how many it deleted.
	Prune(ctx context.Context, p PruneParams) (int, error)
}

// Notifier is implemented by stores that can tell a Sender that work arrived from
// elsewhere (another process enqueued or requeued), such as PostgreSQL's LISTEN/NOTIFY.
// The Sender checks for it with a type assertion; without it, the Sender relies on its own
// wake-ups and the poll interval.
type Notifier interface {
	// Notify returns a channel that receives a value when new work may be due.
	Notify() <-chan struct{}
}

// InlineRecorder is implemented by stores whose Record never waits on I/O, such as the
// memory store. The Sender then writes each result on the worker that made the attempt;
// for any other store, recorder goroutines write results while the workers go on to their
// next attempts, since a durable write takes longer than most requests.
type InlineRecorder interface {
	Store
	// RecordsInline reports whether Record may run on the attempt's worker.
	RecordsInline() bool
}

// TxStore is implemented by stores that can enqueue inside a transaction the caller
// already holds (the transactional outbox): the deliveries commit or roll back with the
// caller's own writes. tx is the driver's transaction type (for the PostgreSQL store, a
// pgx.Tx); a store given a tx of another type returns an error wrapping ErrInvalidOption.
type TxStore interface {
	Store
	// EnqueueTx is Enqueue inside tx. The deliveries become claimable when tx commits.
	EnqueueTx(ctx context.Context, tx any, deliveries []Delivery) error
}

// ListMatches reports whether d passes p's filters and lies after p.Cursor. Stores that
// filter in memory use it so that every store agrees on List's meaning.
func ListMatches(p ListParams, d *Delivery) bool {
	return (p.EndpointID == "" || d.EndpointID == p.EndpointID) &&
		(p.EventID == "" || d.EventID == p.EventID) &&
		(p.State == "" || d.State == p.State) &&
		(p.CreatedAfter.IsZero() || !d.CreatedAt.Before(p.CreatedAfter)) &&
		(p.CreatedBefore.IsZero() || d.CreatedAt.Before(p.CreatedBefore)) &&
		(p.Cursor == "" || d.ID > p.Cursor)
}

// PruneMatches reports whether p selects d for deletion.
func PruneMatches(p PruneParams, d *Delivery) bool {
	switch d.State {
	case StateSucceeded:
		return !p.SucceededBefore.IsZero() && d.UpdatedAt.Before(p.SucceededBefore)
	case StateFailed:
		return !p.FailedBefore.IsZero() && d.UpdatedAt.Before(p.FailedBefore)
	}
	return false
}

// EndpointSet returns a membership test for a usually tiny list of endpoint IDs, such as
// ClaimParams.ExcludeEndpoints. Stores that filter in memory use it.
func EndpointSet(ids []string) func(endpointID string) bool {
	switch {
	case len(ids) == 0:
		return func(string) bool { return false }
	case len(ids) <= 8:
		return func(id string) bool { return slices.Contains(ids, id) }
	}
	set := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		set[id] = struct{}{}
	}
	return func(id string) bool { _, ok := set[id]; return ok }
}

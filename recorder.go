package webhook

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/hooksmith/webhook/store"
)

// recordTimeout bounds writing an attempt's result, independently of Close's context, so
// that an aborted attempt is still recorded.
const recordTimeout = 10 * time.Second

// recordJob is an attempt's result (or a delivery handed back untouched) on its way to
// the store.
type recordJob struct {
	d       Delivery
	p       store.RecordParams
	verdict Verdict
}

// recorder writes results to the store, then tells those who wait on them: the Sends
// waiting for room when a delivery finished, the dispatcher when a delivery is
// claimable again, and the logs and hooks. It is the workers' last stage. A durable
// store's write takes longer than the request did, so the worker goes on to its next
// delivery while one of the recorder's goroutines writes this result (the delivery stays
// leased, in flight, until the write lands); a store whose writes never wait on I/O
// (store.InlineRecorder) is written on the worker itself. River's job completers come in
// the same two kinds.
type recorder struct {
	store Store
	admit *admission
	disp  *dispatcher
	hooks Hooks
	log   *zap.Logger
	jobs  chan recordJob // nil: inline
	wg    sync.WaitGroup
	once  sync.Once
}

func newRecorder(st Store, admit *admission, disp *dispatcher, hooks Hooks, log *zap.Logger, writers int) *recorder {
	r := &recorder{store: st, admit: admit, disp: disp, hooks: hooks, log: log}
	if in, ok := st.(store.InlineRecorder); ok && in.RecordsInline() {
		return r
	}
	r.jobs = make(chan recordJob, writers)
	r.wg.Add(writers)
	for range writers {
		go func() {
			defer r.wg.Done()
			for j := range r.jobs {
				r.write(j)
			}
		}()
	}
	return r
}

// record writes j, or queues it for writing.
func (r *recorder) record(j recordJob) {
	if r.jobs == nil {
		r.write(j)
		return
	}
	r.jobs <- j
}

// close writes what is queued and returns once every write is done. No record may
// follow it; it is safe to call more than once.
func (r *recorder) close() {
	r.once.Do(func() {
		if r.jobs != nil {
			close(r.jobs)
		}
	})
	r.wg.Wait()
}

// write stores a result and tells those who wait on it.
func (r *recorder) write(j recordJob) {
	ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
	err := r.store.Record(ctx, j.p)
	cancel()
	if err != nil {
		// The delivery stays in flight until its lease expires, then is attempted
		// again: at least once, never lost.
		level := zap.ErrorLevel
		if errors.Is(err, store.ErrLeaseLost) {
			level = zap.WarnLevel
		}
		if ce := r.log.Check(level, "webhook: recording an attempt failed; the delivery will be retried after its lease expires"); ce != nil {
			ce.Write(zap.String("delivery_id", j.d.ID), zap.String("endpoint_id", j.d.EndpointID), zap.Error(err))
		}
		return
	}
	after := j.d
	after.Apply(j.p)
	if j.p.State.Finished() {
		r.admit.roomFreed()
	}
	// Claimable again, now or at its NextAttemptAt; or, for an ordered endpoint, the
	// next delivery now may go.
	r.disp.wake()
	if j.p.Attempt == nil && j.p.State == StatePending {
		return // handed back untouched: nothing happened to report
	}
	r.logAttempt(after, j.p, j.verdict)
	if r.hooks.OnAttempt != nil {
		var a Attempt
		if j.p.Attempt != nil {
			a = *j.p.Attempt
			a.Number = 0 // the store numbered it; Delivery.Attempts has the count
		}
		r.hooks.OnAttempt(AttemptReport{Delivery: after, Attempt: a, Verdict: j.verdict, Final: j.p.State.Finished()})
	}
}

func (r *recorder) logAttempt(d Delivery, p store.RecordParams, verdict Verdict) {
	level := zapcore.DebugLevel
	msg := "webhook: delivered"
	switch p.State {
	case StatePending:
		level, msg = zapcore.InfoLevel, "webhook: attempt failed; will retry"
	case StateFailed:
		level, msg = zapcore.WarnLevel, "webhook: delivery failed permanently"
	}
	ce := r.log.Check(level, msg)
	if ce == nil {
		return
	}
	fields := []zap.Field{
		zap.String("delivery_id", d.ID), zap.String("endpoint_id", d.EndpointID),
		zap.String("event_id", d.EventID), zap.String("event_type", d.EventType),
		zap.Int("attempt", d.Attempts), zap.Stringer("verdict", verdict),
	}
	if a := p.Attempt; a != nil {
		fields = append(fields, zap.Int("status", a.StatusCode), zap.Duration("latency", a.Duration))
		if a.Error != "" {
			fields = append(fields, zap.String("error", a.Error))
		}
	} else if d.LastError != "" {
		fields = append(fields, zap.String("error", d.LastError))
	}
	if p.State == StatePending {
		fields = append(fields, zap.Time("next_attempt_at", p.NextAttemptAt))
	}
	ce.Write(fields...)
}

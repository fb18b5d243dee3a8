package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/store"
	"github.com/jackc/pgx/v5"
)

// Record implements webhook.Store. Concurrent calls are written together in one round
// trip and transaction (see WithBatchSize); each is atomic on its own and gets its own
// result.
func (s *Store) Record(ctx context.Context, p store.RecordParams) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	switch p.State {
	case webhook.StatePending, webhook.StateSucceeded, webhook.StateFailed:
	default:
		return fmt.Errorf("%w: Record to state %q; want pending, succeeded or failed", webhook.ErrInvalidState, p.State)
	}
	return s.records.do(ctx, p)
}

func (s *Store) writeRecords(reqs []*request[store.RecordParams]) {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	// A delivery recorded twice in one batch (a lost lease racing its new holder) goes in
	// a later statement of the same transaction, so each statement updates a row once.
	var rounds [][]*request[store.RecordParams]
	seen := make(map[string]int, len(reqs)) // delivery ID -> rounds it is in
	retry := false
	for _, r := range reqs {
		n := seen[r.arg.DeliveryID]
		seen[r.arg.DeliveryID] = n + 1
		if n == len(rounds) {
			rounds = append(rounds, nil)
		}
		rounds[n] = append(rounds[n], r)
		retry = retry || r.arg.State == webhook.StatePending
	}
	b := &pgx.Batch{}
	// The planner expects one row from the ANY($1) index scan, so it joins the input to
	// the updated rows (and the attempts to them) in nested loops, rescanning the whole
	// batch per row: quadratic in the batch size. Hash joins instead; and no sequential
	// scan, which a plan made while the table was small would keep using as it grows.
	// For this transaction only (the batch is one implicit transaction; the settings end
	// with it).
	b.Queue("SELECT set_config('enable_nestloop', 'off', true), set_config('enable_seqscan', 'off', true), " + durableCommit)
	for _, round := range rounds {
		b.Queue(s.recordSQL, recordArgs(round)...)
	}
	if retry {
		// A retry may be due sooner than other Senders' next look: tell them at commit.
		b.Queue("SELECT pg_notify($1, '')", s.cfg.channel)
	}
	br := s.pool.SendBatch(ctx, b)
	br.Exec() // a failure here fails the statements after it, reported below
	errs := make(map[*request[store.RecordParams]]error, len(reqs))
	for _, round := range rounds {
		rows, _ := br.Query()
		var ord int64
		var updated, exists bool
		_, err := pgx.ForEachRow(rows, []any{&ord, &updated, &exists}, func() error {
			r := round[ord-1]
			switch {
			case !exists:
				errs[r] = fmt.Errorf("%w: %s", webhook.ErrNotFound, r.arg.DeliveryID)
			case !updated:
				errs[r] = fmt.Errorf("%w: %s", store.ErrLeaseLost, r.arg.DeliveryID)
			}
			return nil
		})
		if err != nil {
			for _, r := range round {
				errs[r] = wrap("record", err)
			}
		}
	}
	if err := br.Close(); err != nil { // the commit failed: nothing was written
		for _, r := range reqs {
			errs[r] = wrap("record", err)
		}
	}
	for _, r := range reqs {
		r.done <- errs[r]
	}
}

func recordArgs(reqs []*request[store.RecordParams]) []any {
	n := len(reqs)
	var (
		ids, owners, states, errTexts, reasons = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		hasAttempt, statuses                   = make([]int32, n), make([]int32, n)
		nows, nexts, starts                    = make([]time.Time, n), make([]time.Time, n), make([]time.Time, n)
		durations                              = make([]int64, n)
		bodies                                 = make([][]byte, n)
	)
	for i, r := range reqs {
		p := &r.arg
		ids[i], owners[i], states[i], reasons[i] = p.DeliveryID, p.Owner, string(p.State), p.Reason
		nows[i], nexts[i] = p.Now, p.NextAttemptAt
		if a := p.Attempt; a != nil {
			hasAttempt[i], statuses[i], errTexts[i] = 1, int32(a.StatusCode), a.Error
			starts[i], durations[i], bodies[i] = a.StartedAt, int64(a.Duration), a.ResponseBody
		}
	}
	return []any{ids, owners, states, hasAttempt, statuses, errTexts, reasons, nows, nexts, starts, durations, bodies, string(webhook.StateInFlight)}
}

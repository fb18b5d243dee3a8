package main

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/store"
)

// statsStore counts a store's calls and the time they take, to show where a Sender on it
// waits (-store-stats). It keeps the wrapped store's Notifier, which the Sender uses for
// wake-ups.
type statsStore struct {
	webhook.Store
	claims, claimed, claimNS      atomic.Int64
	nextDue, nextDueNS            atomic.Int64
	enqueues, enqueued, enqueueNS atomic.Int64
	records, recordNS             atomic.Int64
}

type notifyingStatsStore struct {
	*statsStore
	n store.Notifier
}

func (s notifyingStatsStore) Notify() <-chan struct{} { return s.n.Notify() }

// withStats wraps st; the returned store is what to give the Sender.
func withStats(st webhook.Store) (webhook.Store, *statsStore) {
	s := &statsStore{Store: st}
	if n, ok := st.(store.Notifier); ok {
		return notifyingStatsStore{s, n}, s
	}
	return s, s
}

func (s *statsStore) Claim(ctx context.Context, p store.ClaimParams) ([]webhook.Delivery, error) {
	t := time.Now()
	ds, err := s.Store.Claim(ctx, p)
	s.claimNS.Add(int64(time.Since(t)))
	s.claims.Add(1)
	s.claimed.Add(int64(len(ds)))
	return ds, err
}

func (s *statsStore) NextDue(ctx context.Context, exclude []string) (time.Time, error) {
	t := time.Now()
	next, err := s.Store.NextDue(ctx, exclude)
	s.nextDueNS.Add(int64(time.Since(t)))
	s.nextDue.Add(1)
	return next, err
}

func (s *statsStore) Enqueue(ctx context.Context, ds []webhook.Delivery) error {
	t := time.Now()
	err := s.Store.Enqueue(ctx, ds)
	s.enqueueNS.Add(int64(time.Since(t)))
	s.enqueues.Add(1)
	s.enqueued.Add(int64(len(ds)))
	return err
}

func (s *statsStore) Record(ctx context.Context, p store.RecordParams) error {
	t := time.Now()
	err := s.Store.Record(ctx, p)
	s.recordNS.Add(int64(time.Since(t)))
	s.records.Add(1)
	return err
}

// StoreStats are a store's calls during one phase (warm-up included), as the Sender made
// them.
type StoreStats struct {
	Claims           int64   `json:"claims"`
	RowsPerClaim     float64 `json:"deliveries_per_claim"`
	ClaimMicros      float64 `json:"claim_mean_us"`
	ClaimBusy        float64 `json:"claim_busy_fraction"` // of the phase's wall time, in Claim (the dispatcher is one goroutine)
	NextDues         int64   `json:"next_due_calls"`
	NextDueMicros    float64 `json:"next_due_mean_us"`
	DispatcherBusy   float64 `json:"dispatcher_store_busy_fraction"` // Claim + NextDue
	Enqueues         int64   `json:"enqueues"`
	EnqueueMicros    float64 `json:"enqueue_mean_us"`
	Records          int64   `json:"records"`
	RecordMicros     float64 `json:"record_mean_us"`
	DeliveriesPerSec float64 `json:"claimed_per_sec"`
	Seconds          float64 `json:"seconds"`
}

func (s *statsStore) result(secs float64) *StoreStats {
	mean := func(ns, n int64) float64 {
		if n == 0 {
			return 0
		}
		return float64(ns) / float64(n) / 1e3
	}
	claims, nextDue := s.claims.Load(), s.nextDue.Load()
	r := &StoreStats{Claims: claims, ClaimMicros: mean(s.claimNS.Load(), claims),
		NextDues: nextDue, NextDueMicros: mean(s.nextDueNS.Load(), nextDue),
		Enqueues: s.enqueues.Load(), EnqueueMicros: mean(s.enqueueNS.Load(), s.enqueues.Load()),
		Records: s.records.Load(), RecordMicros: mean(s.recordNS.Load(), s.records.Load()), Seconds: secs}
	if claims > 0 {
		r.RowsPerClaim = float64(s.claimed.Load()) / float64(claims)
	}
	if secs > 0 {
		r.ClaimBusy = float64(s.claimNS.Load()) / 1e9 / secs
		r.DispatcherBusy = float64(s.claimNS.Load()+s.nextDueNS.Load()) / 1e9 / secs
		r.DeliveriesPerSec = float64(s.claimed.Load()) / secs
	}
	return r
}

// Package filestore is a durable webhook.Store in one file on local disk, for a service
// that runs as a single process: deliveries survive restarts and crashes without a
// database server. It is built on go.etcd.io/bbolt.
//
//	fs, err := filestore.Open("/var/lib/myservice/webhooks.db")
//	if err != nil { ... }
//	defer fs.Close()
//	s, err := webhook.NewSender(webhook.WithStore(fs), webhook.WithEndpoints(...))
//	if err != nil { ... }
//	defer s.Close(ctx)
//
// # Durability
//
// Enqueue, and so Sender.Send, returns only after the deliveries are committed and
// fsynced: once Send returns nil, the event is delivered at least once even if the
// process crashes or the machine loses power right after. Recording an attempt's result
// is durable the same way. Concurrent writes are group-committed: a single goroutine
// commits every write waiting at that moment in one transaction, so many concurrent Sends
// share each fsync (see WithGroupCommit). Claims are separate write transactions.
//
// # One process at a time
//
// The file is locked while open. A second Open of the same file, from another process or
// this one, waits for the lock timeout (WithLockTimeout) and then fails with an error
// wrapping ErrLocked instead of corrupting the file. Several Senders of one process may
// share one *Store. Services that run several instances need a shared store such as the
// PostgreSQL one.
//
// # Crash recovery
//
// Nothing needs repairing after a crash: every commit is atomic, so the file holds
// exactly the last committed state. Deliveries that were in flight when the process died
// are still leased to the dead Sender, with the lease's expiry in the file; a new Sender
// on the file claims them as soon as their leases expire (webhook.WithLeaseDuration) and
// attempts them again. An attempt that reached the receiver but whose result was not yet
// recorded is therefore repeated: receivers deduplicate on the webhook-id header.
//
// # Damaged files
//
// A file damaged otherwise (cut short by a full disk or a bad copy, pages overwritten)
// is refused: Open walks every page in use, with bounds checks, before bbolt maps the
// file, and returns an error wrapping ErrCorrupt instead of letting bbolt crash the
// process. A single delivery record that cannot be decoded does not stop the others: the
// claim that meets it fails that delivery with the reason and keeps its bytes
// (Store.Quarantined).
//
// # Layout
//
// Deliveries are kept in ID order, which is creation order, so List pages through them
// with a cursor; filters other than the cursor are applied while scanning. Pending
// deliveries are indexed per endpoint by due time, so a claim skips an endpoint that
// cannot take work without reading its backlog; in-flight ones are indexed by lease
// expiry. Records use a compact binary encoding, and bodies are stored unchanged.
//
// An ordered endpoint (store.ClaimParams.Ordered) must give out its oldest unfinished
// delivery first, but its queue is kept by due time, not ID: when such an endpoint comes
// up in a claim, its whole pending queue is read to find the lowest ID, and the claim
// reads every lease once to see whether an older delivery is still in flight. An ordered
// endpoint's backlog is therefore read on each claim it is due in; endpoints that are not
// ordered cost the same as before.
package filestore

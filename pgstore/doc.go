// Package pgstore is a PostgreSQL webhook.Store for hooksmith: deliveries survive
// restarts, and any number of Senders in any number of processes share the work through
// the database, coordinating only through leases.
//
//	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
//	...
//	store, err := pgstore.New(ctx, pool)
//	...
//	if err := store.Migrate(ctx); err != nil { ... }
//	sender, err := webhook.NewSender(webhook.WithStore(store), webhook.WithEndpoints(...))
//	...
//	defer store.Close() // after sender.Close
//
// # Transactional outbox
//
// Sender.SendTx writes an event's deliveries with the caller's pgx.Tx, so the event is
// sent if and only if the transaction that caused it commits:
//
//	tx, err := pool.Begin(ctx)
//	...
//	_, err = tx.Exec(ctx, "INSERT INTO orders ...")
//	_, err = sender.SendTx(ctx, tx, webhook.Event{Type: "order.created", Data: order})
//	err = tx.Commit(ctx) // the deliveries become claimable, and Senders are woken, now
//
// # Durability
//
// The store's own transactions (Enqueue, Record, Requeue) commit only once their WAL is on
// disk, whatever the server's or the role's synchronous_commit: they raise "off" to "on"
// for themselves, and keep any stricter setting. Claims commit without waiting (a lease
// lost in a crash only makes the delivery claimable again). SendTx commits as the caller's
// transaction does: if synchronous_commit is off for it, a server crash can lose the
// event with the rest of that transaction.
//
// # Wake-ups
//
// Enqueue, EnqueueTx, Requeue and scheduled retries call pg_notify in the transaction
// that writes them, so Senders listening on the store (the Store is a store.Notifier,
// holding one pool connection in LISTEN) claim new work as soon as it commits, whichever
// process wrote it; the Sender's poll interval is only a fallback.
//
// # Crashes
//
// A claimed delivery is leased until LeaseExpiresAt. If its Sender dies, the lease
// expires and the next Claim by any Sender takes the delivery over (at least once: the
// request may be sent again). Claims lock with FOR UPDATE SKIP LOCKED, so Senders never
// wait on each other's rows.
//
// # Schema
//
// Migrate creates the schema (WithSchema, default "public") and the tables
// <prefix>deliveries, <prefix>attempts and <prefix>migrations (WithTablePrefix, default
// "hooksmith_") from versioned SQL files embedded in this package, under an advisory
// lock, so every process may call it at startup. Teams that run their own migration tool
// take the rendered files from Migrations instead. Times are stored with microsecond
// precision and read back in UTC; bodies are stored as bytea, unchanged.
//
// # Throughput
//
// Concurrent Record calls (one per attempt) and concurrent Enqueue calls (one per Send)
// are group-committed: whatever calls arrive while a batch is being written form the next
// batch, written in one round trip and one transaction, each call keeping its own result.
package pgstore

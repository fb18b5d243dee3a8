// Command postgres-outbox is a service that stores an order and its order.created webhook
// in one PostgreSQL transaction (the transactional outbox), with the PostgreSQL store:
//
//	eval "$(bash .ci/postgres.sh start)"   # a throwaway local server, if you have none
//	go run ./examples/postgres-outbox
//	go run ./examples/postgres-outbox -database-url postgres://user:pass@host:5432/db
//
// Writing the order and then calling Send has two gaps: a crash between the two loses the
// webhook, and a Send followed by a failed commit announces an order that does not exist.
// Sender.SendTx closes both: the deliveries are rows written with the order's own pgx.Tx,
// so the webhook exists if and only if the order commits. After the commit, any Sender
// on the same tables (this process, or another instance of the service) is woken by
// PostgreSQL's LISTEN/NOTIFY and delivers it.
//
// The program places two orders. The first one's payment is declined after the order and
// its webhook were written, so the transaction rolls back: nothing is sent, and the
// delivery ID SendTx returned does not exist. The second commits and is delivered to a
// receiver in the same process that verifies the signature. It exits non-zero if the
// committed order's webhook was not delivered and verified, or if anything of the
// rolled-back order was stored or sent.
//
// Its tables live in their own schema, outboxSchema, so pointing it at a database you
// use for other things touches nothing of yours.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/pgstore"
)

// Where the connection URL comes from, in order: the flag, DATABASE_URL, then the variable
// that `bash .ci/postgres.sh start` exports for the test suite.
const (
	envDatabaseURL = "DATABASE_URL"
	envTestURL     = "HOOKSMITH_TEST_DATABASE_URL"
)

// outboxSchema holds this example's tables: the store's (hooksmith_deliveries, ...) and
// the orders table.
const outboxSchema = "outbox_example"

// timeout bounds the whole run: a delivery woken by NOTIFY takes milliseconds, and a bug
// should end in an error, not a hang.
const timeout = 30 * time.Second

func main() {
	flagURL := flag.String("database-url", "", "PostgreSQL connection URL (default $"+envDatabaseURL+", then $"+envTestURL+")")
	flag.Parse()

	databaseURL := firstNonEmpty(*flagURL, os.Getenv(envDatabaseURL), os.Getenv(envTestURL))
	if databaseURL == "" {
		fmt.Fprintf(os.Stderr, `postgres-outbox: no database to use.
Pass -database-url postgres://user:pass@host:5432/db or set %s.
For a throwaway local server (needs the postgresql package), run from the repository root:

	eval "$(bash .ci/postgres.sh start)" && go run ./examples/postgres-outbox

which exports %s; "bash .ci/postgres.sh stop" removes the server again.
`, envDatabaseURL, envTestURL)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout, databaseURL); err != nil {
		fmt.Fprintln(os.Stderr, "postgres-outbox: FAILED:", err)
		stop()
		os.Exit(1)
	}
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// order is the service's own data. Its webhook carries it as the event's data.
type order struct {
	ID         string `json:"order_id"`
	Customer   string `json:"customer"`
	TotalCents int    `json:"total_cents"`
}

// errDeclined is the payment failure that rolls the first order back.
var errDeclined = errors.New("payment declined")

// run is the whole program.
func run(ctx context.Context, out io.Writer, databaseURL string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	con := &console{w: out}

	// 1. The receiver, standing in for a customer's server.
	secret := webhook.NewSecret()
	verifier, err := webhook.NewVerifier(secret)
	if err != nil {
		return err
	}
	recv := &receiver{verifier: verifier, con: con, orders: map[string]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: recv, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutCtx)
		<-served
	}()
	url := "http://" + ln.Addr().String() + "/webhooks"
	con.printf("receiver  listening on %s", url)

	// 2. The database. The pool is the service's own; the store borrows it (and keeps one
	// connection for LISTEN). Deferred calls run last-first: Sender, store, then pool.
	pool, err := pgxpool.New(ctx, databaseURL)
	if err != nil {
		return fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	defer pool.Close()
	store, err := pgstore.New(ctx, pool, pgstore.WithSchema(outboxSchema))
	if err != nil {
		return err
	}
	defer store.Close()
	// Migrate is safe to call from every instance at startup (it serialises on an advisory
	// lock). Teams with their own migration tool apply pgstore.Migrations() instead.
	if err := store.Migrate(ctx); err != nil {
		return fmt.Errorf("migrating the webhook tables: %w", err)
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+outboxSchema+`.orders (
		id text PRIMARY KEY,
		customer text NOT NULL,
		total_cents integer NOT NULL,
		created_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("creating the orders table: %w", err)
	}
	con.printf("database  migrated schema %s (webhook tables and orders)", outboxSchema)

	// 3. The Sender. Every instance of the service builds one like it: same store, same
	// endpoints. Whichever is free claims a delivery (SKIP LOCKED), and a crashed
	// instance's deliveries are taken over once their leases expire.
	finished := make(chan webhook.AttemptReport, 64)
	sender, err := webhook.NewSender(
		webhook.WithStore(store),
		webhook.WithEndpoints(webhook.Endpoint{
			ID: "ep_orders", URL: url, Secret: secret, EventTypes: []string{"order.*"},
		}),
		// The destination guard refuses loopback and private addresses, so that a customer
		// cannot point an endpoint into your network. This example's receiver is on this
		// machine, so loopback is allowed here; a real service leaves the guard alone.
		webhook.WithAllowedNetworks(netip.MustParsePrefix("127.0.0.0/8")),
		// The demo waits for its order's delivery to finish. Hooks run on the worker and
		// must not block: a report the buffer has no room for is dropped, not waited for.
		webhook.WithHooks(webhook.Hooks{OnAttempt: func(r webhook.AttemptReport) {
			if !r.Final {
				return
			}
			select {
			case finished <- r:
			default:
			}
		}}),
	)
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = sender.Close(closeCtx)
	}()

	// 4. An order whose payment is declined after the order and its webhook were written:
	// the transaction rolls back, and the webhook with it.
	declined := order{ID: newOrderID(), Customer: "cus_grace", TotalCents: 990_000}
	declinedIDs, err := placeOrder(ctx, pool, sender, declined)
	if !errors.Is(err, errDeclined) {
		return fmt.Errorf("order %s: want %v, got %v", declined.ID, errDeclined, err)
	}
	con.printf("service   order %s: inserted, SendTx -> %v, then %v: ROLLBACK", declined.ID, declinedIDs, err)
	for _, id := range declinedIDs {
		// SendTx returned an ID, but the row it names was rolled back with the order.
		if _, err := sender.Delivery(ctx, id); !errors.Is(err, webhook.ErrNotFound) {
			return fmt.Errorf("delivery %s of the rolled-back order: want ErrNotFound, got %v", id, err)
		}
		con.printf("service   delivery %s does not exist (webhook.ErrNotFound): nothing will be sent", id)
	}

	// 5. An order that commits: its webhook becomes claimable at the commit, whose NOTIFY
	// wakes the Sender (of this or any other instance) at once.
	placed := order{ID: newOrderID(), Customer: "cus_ada", TotalCents: 4200}
	placedIDs, err := placeOrder(ctx, pool, sender, placed)
	if err != nil {
		return fmt.Errorf("order %s: %w", placed.ID, err)
	}
	committedAt := time.Now()
	con.printf("service   order %s: inserted, SendTx -> %v, COMMIT", placed.ID, placedIDs)
	if len(placedIDs) != 1 {
		return fmt.Errorf("order %s: want one delivery, got %d", placed.ID, len(placedIDs))
	}

	// 6. Wait for the committed order's delivery to finish. A service does not wait like
	// this; the demo does, to report and to exit.
	for done := false; !done; {
		select {
		case r := <-finished:
			if r.Delivery.ID != placedIDs[0] {
				continue
			}
			if r.Verdict != webhook.Delivered {
				return fmt.Errorf("delivery %s: %s (%s)", r.Delivery.ID, r.Verdict, r.Delivery.LastError)
			}
			con.printf("sender    delivery %s: HTTP %d, delivered %s after the commit",
				r.Delivery.ID, r.Attempt.StatusCode, time.Since(committedAt).Round(time.Millisecond))
			done = true
		case <-ctx.Done():
			return fmt.Errorf("waiting for the delivery of order %s: %w", placed.ID, ctx.Err())
		}
	}

	// 7. Check the story from both ends: the store and the receiver.
	d, err := sender.Delivery(ctx, placedIDs[0])
	if err != nil {
		return err
	}
	var stored int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+outboxSchema+`.orders WHERE id = ANY($1)`,
		[]string{placed.ID, declined.ID}).Scan(&stored); err != nil {
		return err
	}
	gotPlaced, gotDeclined, rejected := recv.received(placed.ID, declined.ID)
	con.printf("summary   orders stored: %d of 2, committed order's delivery: %s after %d attempt(s), "+
		"received: committed %t, rolled back %t, requests rejected: %d",
		stored, d.State, d.Attempts, gotPlaced, gotDeclined, rejected)
	switch {
	case stored != 1:
		return fmt.Errorf("%d of the two orders are stored, want only the committed one", stored)
	case d.State != webhook.StateSucceeded:
		return fmt.Errorf("delivery %s is %s, want succeeded", d.ID, d.State)
	case !gotPlaced:
		return fmt.Errorf("the receiver did not process order %s", placed.ID)
	case gotDeclined:
		return fmt.Errorf("the receiver was sent the rolled-back order %s", declined.ID)
	case rejected > 0:
		return fmt.Errorf("the receiver rejected %d request(s)", rejected)
	}
	con.printf("OK        the committed order's webhook was delivered and verified; the rolled-back one never existed")
	return nil
}

// placeOrder is the service's code path: the order row and its webhook are written in
// one transaction, which commits only if the payment goes through. pgx.BeginFunc commits
// when the function returns nil and rolls back otherwise. It returns the delivery IDs
// SendTx returned even when the transaction rolled back, for the demo to look them up.
func placeOrder(ctx context.Context, pool *pgxpool.Pool, sender *webhook.Sender, o order) ([]string, error) {
	var ids []string
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO `+outboxSchema+`.orders (id, customer, total_cents) VALUES ($1, $2, $3)`,
			o.ID, o.Customer, o.TotalCents); err != nil {
			return fmt.Errorf("inserting the order: %w", err)
		}
		// The same tx: the deliveries are written next to the order, and nothing is
		// claimable (or sent) before the commit.
		var err error
		ids, err = sender.SendTx(ctx, tx, webhook.Event{Type: "order.created", Data: o})
		if err != nil {
			return fmt.Errorf("storing the webhook: %w", err)
		}
		return charge(o)
	})
	return ids, err
}

// charge stands in for a payment provider that declines large orders. Anything that fails
// before the commit has the same effect: a constraint violation, a lost connection, a
// crash.
func charge(o order) error {
	if o.TotalCents > 100_000 {
		return errDeclined
	}
	return nil
}

// newOrderID returns a fresh order ID, so the program can run again on the same database.
func newOrderID() string {
	return "ord_" + webhook.NewEventID()[len("msg_"):]
}

// receiver verifies each request and remembers which orders it was told about.
type receiver struct {
	verifier *webhook.Verifier
	con      *console

	mu       sync.Mutex
	orders   map[string]bool // order IDs processed; production de-duplicates on webhook-id
	rejected int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := rc.verifier.VerifyRequest(r, 1<<20)
	if err != nil {
		rc.mu.Lock()
		rc.rejected++
		rc.mu.Unlock()
		rc.con.printf("receiver  rejected: %v -> 401", err)
		http.Error(w, "invalid signature", http.StatusUnauthorized)
		return
	}
	var env webhook.Envelope
	var o order
	if err := json.Unmarshal(body, &env); err != nil {
		http.Error(w, "not a webhook envelope", http.StatusBadRequest)
		return
	}
	if err := json.Unmarshal(env.Data, &o); err != nil {
		http.Error(w, "not an order", http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	rc.orders[o.ID] = true
	rc.mu.Unlock()
	rc.con.printf("receiver  %s %s signature ok, order %s (%s, %d cents) -> 204", env.Type, env.ID, o.ID, o.Customer, o.TotalCents)
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) received(placed, declined string) (gotPlaced, gotDeclined bool, rejected int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.orders[placed], rc.orders[declined], rc.rejected
}

// console serialises lines from the receiver's and the service's goroutines.
type console struct {
	mu sync.Mutex
	w  io.Writer
}

func (c *console) printf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.w, format+"\n", args...)
}

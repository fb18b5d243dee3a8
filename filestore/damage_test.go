package filestore_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/filestore"
	"github.com/hooksmith/webhook/store"
	"github.com/hooksmith/webhook/webhooktest"
)

// damagedFileEnv names a file for a child process to open and use (see useDamagedFile).
const damagedFileEnv = "HOOKSMITH_DAMAGED_FILE"

// useDamagedFile opens the store at path, claims every delivery, lists them and closes
// it, printing what happened. It returns the process's exit code: 0 when the store
// worked or Open reported ErrCorrupt, 3 for any other error. A crash is what the parent
// looks for.
func useDamagedFile(path string) int {
	s, err := filestore.Open(path, filestore.WithNoSync(true))
	if errors.Is(err, filestore.ErrCorrupt) {
		fmt.Println("corrupt:", err)
		return 0
	}
	if err != nil {
		fmt.Println("error:", err)
		return 3
	}
	defer s.Close()
	ctx := context.Background()
	far := time.Now().Add(1000 * time.Hour)
	claimed := 0
	for {
		ds, err := s.Claim(ctx, store.ClaimParams{Now: far, Limit: 500, Owner: "o", LeaseUntil: far.Add(time.Hour)})
		if err != nil {
			fmt.Println("claim error:", err)
			return 3
		}
		if len(ds) == 0 {
			break
		}
		claimed += len(ds)
	}
	if _, err := s.List(ctx, webhook.ListParams{Limit: 10000}); err != nil {
		fmt.Println("list error:", err)
		return 3
	}
	q, err := s.Quarantined(ctx)
	if err != nil {
		fmt.Println("quarantined error:", err)
		return 3
	}
	fmt.Printf("ok: claimed %d, quarantined %d\n", claimed, len(q))
	return 0
}

// writeStoreFile makes a store file holding n pending deliveries over three endpoints,
// with bodies of 300 bytes, so that its trees span many pages.
func writeStoreFile(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hooks.db")
	s, err := filestore.Open(path)
	require.NoError(t, err)
	now := time.Now()
	ds := make([]webhook.Delivery, n)
	for i := range ds {
		ds[i] = webhook.Delivery{ID: fmt.Sprintf("dlv_%06d", i), EventID: fmt.Sprintf("msg_%06d", i), EventType: "a.b",
			EndpointID: fmt.Sprintf("ep_%d", i%3), Version: "1", Body: []byte(`{"pad":"` + strings.Repeat("x", 290) + `"}`),
			State: webhook.StatePending, CreatedAt: now, QueuedAt: now, NextAttemptAt: now, UpdatedAt: now}
	}
	require.NoError(t, s.Enqueue(context.Background(), ds))
	require.NoError(t, s.Close())
	return path
}

// runDamaged opens a damaged copy in a child process and returns what it printed; it
// fails the test if the child crashed.
func runDamaged(t *testing.T, path string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), damagedFileEnv+"="+path)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "the process opening the damaged file died:\n%s", out)
	return string(out)
}

// A file cut short or with damaged pages is an error wrapping ErrCorrupt from Open, or
// a store that works around what is damaged; never a crash of the process (bbolt left
// to itself dies of SIGBUS, SIGSEGV or a panic in a goroutine of its own on such files).
func TestADamagedFileNeverCrashesTheProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("runs child processes; skipped with -short")
	}
	t.Parallel()
	good := writeStoreFile(t, 600)
	data, err := os.ReadFile(good)
	require.NoError(t, err)
	// The pages in use: bbolt grows its file ahead of them.
	db, err := bolt.Open(good, 0o600, &bolt.Options{ReadOnly: true})
	require.NoError(t, err)
	var used int
	require.NoError(t, db.View(func(tx *bolt.Tx) error { used = int(tx.Size()); return nil }))
	pageSize := db.Info().PageSize
	require.NoError(t, db.Close())
	pages := used / pageSize
	write := func(t *testing.T, b []byte) string {
		p := filepath.Join(t.TempDir(), "damaged.db")
		require.NoError(t, os.WriteFile(p, b, 0o600))
		return p
	}
	t.Run("intact", func(t *testing.T) {
		assert.Contains(t, runDamaged(t, good), "ok: claimed 600, quarantined 0")
	})
	for _, cut := range []struct {
		name string
		size int
	}{{"8KiB", 8 << 10}, {"half", used / 2}, {"90%", used * 9 / 10}, {"one page short", used - pageSize}} {
		t.Run("truncated to "+cut.name, func(t *testing.T) {
			out := runDamaged(t, write(t, data[:cut.size]))
			assert.Contains(t, out, "corrupt:", "a truncated file is reported as damaged")
		})
	}
	t.Run("both meta pages zeroed", func(t *testing.T) {
		b := append([]byte(nil), data...)
		clear(b[:2*pageSize])
		assert.Contains(t, runDamaged(t, write(t, b)), "corrupt:")
	})
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	for i := range 16 {
		page := 2 + rng.IntN(pages-2)
		b := append([]byte(nil), data...)
		at, n := page*pageSize, pageSize
		if i%2 == 1 {
			at, n = page*pageSize+rng.IntN(pageSize-64), 64 // a few bytes only
		}
		for j := range n {
			b[at+j] = byte(rng.Uint32())
		}
		t.Run(fmt.Sprintf("page %d overwritten", page), func(t *testing.T) {
			t.Parallel()
			out := runDamaged(t, write(t, b))
			t.Log(strings.TrimSpace(out))
			assert.True(t, strings.Contains(out, "ok:") || strings.Contains(out, "corrupt:"), out)
		})
	}
}

// One delivery whose record cannot be decoded is failed, with the reason, and its
// bytes kept; every other delivery is delivered, on the real clock to a real receiver.
func TestOneBadRecordDoesNotStopTheOthers(t *testing.T) {
	t.Parallel()
	path := writeStoreFile(t, 30)
	const bad = "dlv_000007"
	db, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("deliveries")).Put([]byte(bad), []byte{1, 99, 0xff, 0xff})
	}))
	require.NoError(t, db.Close())

	store, err := filestore.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	secret := webhook.NewSecret()
	rcv := webhooktest.NewReceiver(t, secret)
	var eps []webhook.Endpoint
	for i := range 3 {
		eps = append(eps, webhook.Endpoint{ID: fmt.Sprintf("ep_%d", i), URL: rcv.URL, Secret: secret})
	}
	s, err := webhook.NewSender(webhook.WithStore(store), webhook.WithEndpoints(eps...),
		webhook.WithAllowedNetworks(netip.MustParsePrefix("127.0.0.0/8")))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close(context.Background()) })

	ctx := testContext(t)
	require.NoError(t, rcv.WaitVerified(ctx, 29), "every other delivery arrives")
	d, err := s.Delivery(ctx, bad)
	require.NoError(t, err)
	assert.Equal(t, webhook.StateFailed, d.State)
	assert.Contains(t, d.LastError, "cannot be decoded")
	q, err := store.Quarantined(ctx)
	require.NoError(t, err)
	assert.Equal(t, []byte{1, 99, 0xff, 0xff}, q[bad], "its bytes are kept")
	_, err = s.Retry(ctx, bad)
	assert.ErrorIs(t, err, webhook.ErrInvalidState, "a damaged record cannot be sent again")
	assert.Len(t, rcv.Deliveries(), 29)
}

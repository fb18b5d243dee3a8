package filestore_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/hooksmith/webhook/filestore"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(damagedFileEnv); path != "" {
		os.Exit(useDamagedFile(path))
	}
	if os.Getenv(crashChildEnv) != "" {
		// A crash-test child is killed, not finished: leak checks have nothing to say.
		os.Exit(m.Run())
	}
	goleak.VerifyTestMain(m)
}

// testTimeout bounds every wait in these tests, so a broken test fails instead of hanging.
const testTimeout = 20 * time.Second

func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// openStore opens a store in a new file under t.TempDir and closes it on cleanup.
func openStore(t testing.TB, opts ...filestore.Option) (*filestore.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hooks.db")
	s, err := filestore.Open(path, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s, path
}

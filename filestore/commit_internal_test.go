package filestore

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// TestCommitIsolatesFailures gives one group a write that fails: it gets its own error,
// the others are rolled back, run again and committed, and each write's effect is in the
// file once.
func TestCommitIsolatesFailures(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "c.db"), 0o600, nil)
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err }))
	c := &committer{db: db, maxDelay: time.Millisecond, maxSize: 10}

	boom := errors.New("boom")
	runs := make([]int, 4)
	var group []*writeReq
	for i := range runs {
		group = append(group, &writeReq{err: make(chan error, 1), fn: func(tx *bolt.Tx) error {
			runs[i]++
			if err := tx.Bucket([]byte("b")).Put([]byte{byte(i)}, []byte("v")); err != nil {
				return err
			}
			if i == 2 {
				return boom
			}
			return nil
		}})
	}
	c.commit(group)
	for i, r := range group {
		err := <-r.err
		if i == 2 {
			assert.ErrorIs(t, err, boom)
			continue
		}
		assert.NoError(t, err, "write %d", i)
	}
	assert.Equal(t, []int{2, 2, 2, 1}, runs, "runs per write: the first three until the failure, then the rest again")
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("b"))
		for i := range runs {
			assert.Equal(t, i != 2, b.Get([]byte{byte(i)}) != nil, "key %d", i)
		}
		return nil
	}))
}

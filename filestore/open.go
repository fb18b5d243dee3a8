package filestore

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
)

// errLockBusy reports that another holder kept the file locked for the whole timeout.
var errLockBusy = errors.New("filestore: file is locked")

// openChecked opens the bbolt file at path once checkFile has found it sound, so that a
// damaged file is an error wrapping ErrCorrupt rather than a crash. The check holds a
// shared lock on the file, so that no writer changes it meanwhile, and waits up to
// timeout for one that holds it.
func openChecked(path string, timeout time.Duration, opts *bolt.Options) (db *bolt.DB, err error) {
	// A fault reading the file (one changed under us after the check) panics here, in
	// this goroutine, rather than killing the process.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("%w: %v", ErrCorrupt, r)
		}
	}()
	f, err := os.Open(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return bolt.Open(path, 0o600, opts) // a new store
	case err != nil:
		return nil, err
	}
	err = withSharedLock(f, timeout, func() error { return checkFile(f) })
	f.Close()
	if err != nil {
		return nil, err
	}
	return bolt.Open(path, 0o600, opts)
}

//go:build !unix

package filestore

import (
	"os"
	"time"
)

// withSharedLock runs fn. Without flock, the check may read a file another process is
// writing; bbolt's own lock still keeps two writers apart.
func withSharedLock(_ *os.File, _ time.Duration, fn func() error) error { return fn() }

//go:build unix

package filestore

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// withSharedLock runs fn holding a shared lock on f (the lock bbolt's writers take
// exclusively), trying for up to timeout as bbolt does.
func withSharedLock(f *os.File, timeout time.Duration, fn func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return err
		}
		if !time.Now().Before(deadline) {
			return errLockBusy
		}
		time.Sleep(min(50*time.Millisecond, time.Until(deadline)))
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return fn()
}

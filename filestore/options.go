package filestore

import (
	"fmt"
	"time"

	"github.com/hooksmith/webhook"
)

// Defaults of Open.
const (
	// DefaultLockTimeout is how long Open waits for another holder of the file to let go
	// of it before failing with ErrLocked.
	DefaultLockTimeout = time.Second
	// DefaultCapacity is the default bound on unfinished (pending or in-flight)
	// deliveries: zero, unbounded. The file grows as needed.
	DefaultCapacity = 0
	// DefaultGroupCommitDelay is the longest a group commit waits to gather writers: Enqueue
	// and Record calls made at once share one commit (and its fsyncs), and a group waits
	// up to this long for as many writers as the previous group had, so a lone writer
	// waits only when a busier spell has just ended.
	DefaultGroupCommitDelay = time.Millisecond
	// DefaultGroupCommitSize caps how many writes share one commit.
	DefaultGroupCommitSize = 1000
)

// Option configures Open. Only this package defines options.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	lockTimeout time.Duration
	capacity    int
	batchDelay  time.Duration
	batchSize   int
	noSync      bool
	errs        []error
}

func defaultConfig() config {
	return config{
		lockTimeout: DefaultLockTimeout,
		capacity:    DefaultCapacity,
		batchDelay:  DefaultGroupCommitDelay,
		batchSize:   DefaultGroupCommitSize,
	}
}

func (c *config) fail(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%w: filestore: "+format, append([]any{webhook.ErrInvalidOption}, args...)...))
}

// WithLockTimeout sets how long Open waits for the file's lock while another Store (in
// this or another process) holds it. Default DefaultLockTimeout; zero or negative tries
// once and fails at once.
func WithLockTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.lockTimeout = d })
}

// WithCapacity bounds how many unfinished (pending or in-flight) deliveries the store
// holds: Enqueue past it fails with an error wrapping webhook.ErrQueueFull, and the Sender
// then waits for room or fails fast as configured. Default DefaultCapacity (zero,
// unbounded); must not be negative.
func WithCapacity(n int) Option {
	return optionFunc(func(c *config) {
		if n < 0 {
			c.fail("WithCapacity(%d): must not be negative; zero means unbounded", n)
		}
		c.capacity = n
	})
}

// WithGroupCommit tunes how writes share commits: a group waits up to delay to gather
// as many writers as the previous group had, and at most size writes share one commit.
// Defaults DefaultGroupCommitDelay and DefaultGroupCommitSize. A longer delay may save
// fsyncs under uneven load and adds as much latency when load drops; delay must be
// positive and size at least 1.
func WithGroupCommit(delay time.Duration, size int) Option {
	return optionFunc(func(c *config) {
		if delay <= 0 {
			c.fail("WithGroupCommit(%s, %d): the delay must be positive", delay, size)
		}
		if size < 1 {
			c.fail("WithGroupCommit(%s, %d): the size must be at least 1", delay, size)
		}
		c.batchDelay, c.batchSize = delay, size
	})
}

// WithNoSync skips fsync on commit. It is UNSAFE: Enqueue no longer promises
// durability, and an operating-system crash or power loss may lose recent writes or
// corrupt the file (a crash of the process alone does not). It exists for tests and
// benchmarks only. Default off.
func WithNoSync(on bool) Option {
	return optionFunc(func(c *config) { c.noSync = on })
}

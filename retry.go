package webhook

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Retry defaults.
const (
	// DefaultMaxAttempts is how many attempts a delivery gets before it is dead-lettered:
	// the first and seven retries, as in the Standard Webhooks schedule.
	DefaultMaxAttempts = 8
	// DefaultMaxRetryAfter clamps a receiver's Retry-After: a 429 or 503 asking for a
	// longer wait is retried after this long instead.
	DefaultMaxRetryAfter = time.Hour
	// MinRetryAfter is the shortest wait a Retry-After can ask for, so "Retry-After: 0"
	// cannot spin through the attempts.
	MinRetryAfter = time.Second

	// DefaultInitialInterval, DefaultMultiplier, DefaultMaxInterval and
	// DefaultRandomization shape DefaultSchedule: 5s, ~35s, ~4m, ~29m, ~3.3h, then 10h,
	// each ±20%. This approximates the Standard Webhooks/Svix schedule (5s, 5m, 30m, 2h,
	// 5h, 10h, 10h); StandardWebhooksSchedule is that table exactly.
	DefaultInitialInterval = 5 * time.Second
	DefaultMultiplier      = 7.0
	DefaultMaxInterval     = 10 * time.Hour
	DefaultRandomization   = 0.2
)

// Schedule says how long to wait before each retry.
type Schedule interface {
	// Delay returns the wait before retry n (n = 1 is the wait after the first attempt).
	// It must be safe for concurrent use.
	Delay(n int) time.Duration
}

// ExponentialSchedule grows the wait by Multiplier from InitialInterval up to MaxInterval,
// each wait randomised by ±RandomizationFactor. It is computed with
// github.com/cenkalti/backoff/v4 from the retry number alone, so a delivery's schedule
// survives restarts: nothing but the attempt count is stored.
type ExponentialSchedule struct {
	InitialInterval     time.Duration
	Multiplier          float64
	MaxInterval         time.Duration
	RandomizationFactor float64
}

// DefaultSchedule returns the schedule the Sender uses unless WithRetryPolicy says
// otherwise.
func DefaultSchedule() ExponentialSchedule {
	return ExponentialSchedule{
		InitialInterval:     DefaultInitialInterval,
		Multiplier:          DefaultMultiplier,
		MaxInterval:         DefaultMaxInterval,
		RandomizationFactor: DefaultRandomization,
	}
}

// Delay implements Schedule.
func (e ExponentialSchedule) Delay(n int) time.Duration {
	b := &backoff.ExponentialBackOff{
		InitialInterval:     e.InitialInterval,
		RandomizationFactor: e.RandomizationFactor,
		Multiplier:          e.Multiplier,
		MaxInterval:         e.MaxInterval,
		MaxElapsedTime:      0, // the Sender's MaxAttempts and MaxAge end a delivery
		Stop:                backoff.Stop,
		Clock:               backoff.SystemClock,
	}
	b.Reset()
	// Skip the intervals before retry n deterministically (without randomisation), then
	// let backoff randomise the one we want.
	for i := 1; i < n && b.InitialInterval > 0; i++ {
		next := float64(b.InitialInterval) * b.Multiplier
		if next >= float64(b.MaxInterval) || math.IsInf(next, 0) {
			b.InitialInterval = b.MaxInterval
			break
		}
		b.InitialInterval = time.Duration(next)
	}
	b.Reset()
	return b.NextBackOff()
}

func (e ExponentialSchedule) validate() error {
	switch {
	case e.InitialInterval <= 0:
		return errors.New("InitialInterval must be positive")
	case e.Multiplier < 1:
		return errors.New("Multiplier must be at least 1")
	case e.MaxInterval < e.InitialInterval:
		return errors.New("MaxInterval must be at least InitialInterval")
	case e.RandomizationFactor < 0 || e.RandomizationFactor >= 1:
		return errors.New("RandomizationFactor must be in [0, 1)")
	}
	return nil
}

// FixedSchedule waits the listed durations in order; past its end the last one repeats.
// An empty FixedSchedule retries immediately.
type FixedSchedule []time.Duration

// StandardWebhooksSchedule returns the retry table of the Standard Webhooks guidance and
// Svix: after the first attempt, retries after 5s, 5m, 30m, 2h, 5h, 10h and 10h. Use it
// with MaxAttempts 8 for the whole table.
func StandardWebhooksSchedule() FixedSchedule {
	return FixedSchedule{5 * time.Second, 5 * time.Minute, 30 * time.Minute,
		2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}
}

// Delay implements Schedule.
func (f FixedSchedule) Delay(n int) time.Duration {
	if len(f) == 0 {
		return 0
	}
	return f[min(max(n, 1), len(f))-1]
}

// Verdict is what an attempt's result means for its delivery.
type Verdict int

// Verdicts returned by a Classifier.
const (
	// Delivered: the receiver took it (2xx).
	Delivered Verdict = iota + 1
	// Retry: a transient failure; try again on the schedule.
	Retry
	// Permanent: retrying cannot help; dead-letter the delivery now.
	Permanent
	// Gone: the receiver says the endpoint no longer exists (410); dead-letter the
	// delivery and disable the endpoint.
	Gone
)

func (v Verdict) String() string {
	switch v {
	case Delivered:
		return "delivered"
	case Retry:
		return "retry"
	case Permanent:
		return "permanent"
	case Gone:
		return "gone"
	}
	return "Verdict(" + strconv.Itoa(int(v)) + ")"
}

// Classifier decides what an attempt's outcome means. status is 0 when err is set (no
// response). It must be safe for concurrent use.
type Classifier func(status int, err error) Verdict

// DefaultClassifier follows the Standard Webhooks guidance, as the README's status table
// shows: 2xx is delivered; 410 Gone is gone (the delivery fails and the endpoint is
// disabled); every other answer (3xx, which is never followed, 4xx, 5xx) is retried on
// the schedule, so that a 401 just after a secret rotation or a 404 during a receiver's
// deploy does not dead-letter the delivery. Network errors and timeouts are retried; a
// destination the guard refused (ErrDestinationBlocked) and a *PermanentError are
// permanent. 429 and 503 with a Retry-After header are retried when the receiver asked
// (see RetryPolicy.MaxRetryAfter). A Classifier of your own can make chosen statuses
// permanent.
func DefaultClassifier(status int, err error) Verdict {
	if err != nil {
		var perm *PermanentError
		if errors.As(err, &perm) || errors.Is(err, ErrDestinationBlocked) {
			return Permanent
		}
		return Retry
	}
	switch {
	case status >= 200 && status < 300:
		return Delivered
	case status == http.StatusGone:
		return Gone
	}
	return Retry
}

// PermanentError marks an attempt error that retrying cannot fix (for example a
// destination refused by policy). DefaultClassifier dead-letters deliveries whose
// attempts fail with it.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// RetryPolicy decides whether and when a failed delivery is tried again.
type RetryPolicy struct {
	// Schedule gives the wait before each retry. Nil means DefaultSchedule().
	Schedule Schedule
	// MaxAttempts ends a delivery after this many attempts. Zero means
	// DefaultMaxAttempts; 1 disables retries.
	MaxAttempts int
	// MaxAge ends a delivery whose next retry would fall later than this after it was
	// queued. Zero means no limit beyond MaxAttempts.
	MaxAge time.Duration
	// MaxRetryAfter clamps the receiver's Retry-After. Zero means DefaultMaxRetryAfter.
	MaxRetryAfter time.Duration
	// Classify interprets each attempt. Nil means DefaultClassifier.
	Classify Classifier
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.Schedule == nil {
		p.Schedule = DefaultSchedule()
	}
	if p.MaxAttempts == 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.MaxRetryAfter == 0 {
		p.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if p.Classify == nil {
		p.Classify = DefaultClassifier
	}
	return p
}

func (p RetryPolicy) validate() error {
	if p.MaxAttempts < 0 {
		return fmt.Errorf("%w: RetryPolicy.MaxAttempts is %d; use 1 for no retries", ErrInvalidOption, p.MaxAttempts)
	}
	if p.MaxAge < 0 || p.MaxRetryAfter < 0 {
		return fmt.Errorf("%w: RetryPolicy durations must not be negative", ErrInvalidOption)
	}
	if e, ok := p.Schedule.(ExponentialSchedule); ok {
		if err := e.validate(); err != nil {
			return fmt.Errorf("%w: RetryPolicy.Schedule: %v", ErrInvalidOption, err)
		}
	}
	return nil
}

// next returns when a delivery that has now made `attempts` attempts, queued at queuedAt,
// should be tried again, or ok=false to give up. retryAfter > 0 is the receiver's asked
// wait, which replaces the schedule (clamped).
func (p RetryPolicy) next(now, queuedAt time.Time, attempts int, retryAfter time.Duration) (time.Time, bool) {
	if attempts >= p.MaxAttempts {
		return time.Time{}, false
	}
	delay := p.Schedule.Delay(attempts)
	if retryAfter > 0 {
		delay = min(retryAfter, p.MaxRetryAfter)
	}
	at := now.Add(delay)
	if p.MaxAge > 0 && at.Sub(queuedAt) > p.MaxAge {
		return time.Time{}, false
	}
	return at, true
}

// ParseRetryAfter parses a Retry-After header value, either delay-seconds or an HTTP
// date, relative to now. It reports false for an empty, negative or malformed value. A
// date in the past gives 0 and true.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return time.Duration(math.MaxInt64), true
			}
			return 0, false
		}
		if secs > int64(math.MaxInt64/int64(time.Second)) {
			return time.Duration(math.MaxInt64), true
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

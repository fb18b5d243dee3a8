package webhook

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"go.uber.org/zap"
)

// Sender defaults.
const (
	// DefaultWorkers is the number of concurrent attempts a Sender makes.
	DefaultWorkers = 16
	// DefaultTimeout bounds one attempt: connecting, TLS, sending, and reading the
	// response headers and body.
	DefaultTimeout = 15 * time.Second
	// DefaultLeaseDuration is how long a claimed delivery stays leased to its Sender.
	// If the Sender dies, another (or the restarted one) takes it over after this long.
	DefaultLeaseDuration = time.Minute
	// DefaultPollInterval is how often an idle Sender asks the store for due work it was
	// not told about (deliveries enqueued by another process into a shared store).
	DefaultPollInterval = 5 * time.Second
	// DefaultMaxPayloadSize caps an event's envelope, in bytes.
	DefaultMaxPayloadSize = 1 << 20
	// DefaultResponseDrainBytes is how much of a response body is read so the
	// connection can be reused; a longer body closes the connection instead.
	DefaultResponseDrainBytes = 64 << 10
	// DefaultResponseRecordBytes is how much of a response body an Attempt keeps.
	DefaultResponseRecordBytes = 4 << 10
	// DefaultVersion is the event version used when neither the Event nor WithVersion
	// sets one.
	DefaultVersion = "1"
	// DefaultRetention is how long succeeded deliveries are kept before pruning.
	DefaultRetention = 24 * time.Hour
	// DefaultFailedRetention is how long failed (dead-lettered) deliveries are kept.
	DefaultFailedRetention = 30 * 24 * time.Hour
	// DefaultMaxEndpointsPerEvent caps the deliveries one Send may create.
	DefaultMaxEndpointsPerEvent = 1000
)

// LibraryVersion is this library's version, sent in the default User-Agent.
const LibraryVersion = "0.1.0"

// DefaultUserAgent is the User-Agent of every request unless WithUserAgent changes it.
const DefaultUserAgent = "hooksmith/" + LibraryVersion

// Internal defaults, which no option sets.
const (
	// burstReserve is the share of the workers an endpoint can never take under the
	// default endpoint concurrency while another endpoint is enabled: one in
	// burstReserve, and at least one worker.
	burstReserve = 8
	// failingShare is the share of workers, in percent, that endpoints whose last
	// attempt failed may hold together, so that many endpoints hanging until the
	// timeout at once cannot take the workers from the healthy ones.
	failingShare = 25
	// pruneInterval is how often the Sender deletes finished deliveries past their
	// retention (WithRetention).
	pruneInterval = 10 * time.Minute
)

type config struct {
	endpoints       []Endpoint
	store           Store
	workers         int
	endpointLimit   int
	queueCapacity   int
	failFast        bool
	timeout         time.Duration
	lease           time.Duration
	poll            time.Duration
	retry           RetryPolicy
	signer          Signer
	version         string
	versionHeader   string
	userAgent       string
	transport       http.RoundTripper
	logger          *zap.Logger
	hooks           Hooks
	clock           Clock
	maxPayload      int
	maxFanout       int
	drainBytes      int64
	recordBytes     int
	retention       time.Duration
	failedRetention time.Duration
	breaker         [2]time.Duration // cooldown, max cooldown
	breakerAt       int              // failures that open the circuit; <0 disables
	disableAfter    time.Duration
	guard           destinationGuard
	httpsOnly       bool
	proxy           func(*http.Request) (*url.URL, error)
	errs            []error
}

func defaultConfig() config {
	return config{
		workers:         DefaultWorkers,
		timeout:         DefaultTimeout,
		lease:           DefaultLeaseDuration,
		poll:            DefaultPollInterval,
		signer:          StandardSigner{},
		version:         DefaultVersion,
		versionHeader:   DefaultVersionHeader,
		userAgent:       DefaultUserAgent,
		logger:          zap.NewNop(),
		clock:           SystemClock{},
		maxPayload:      DefaultMaxPayloadSize,
		maxFanout:       DefaultMaxEndpointsPerEvent,
		drainBytes:      DefaultResponseDrainBytes,
		recordBytes:     DefaultResponseRecordBytes,
		retention:       DefaultRetention,
		failedRetention: DefaultFailedRetention,
		breaker:         [2]time.Duration{DefaultBreakerCooldown, DefaultBreakerMaxCooldown},
		breakerAt:       DefaultBreakerThreshold,
		disableAfter:    DefaultDisableAfter,
	}
}

func (c *config) fail(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOption}, args...)...))
}

// validate checks what no single option can: their combinations.
func (c *config) validate() error {
	if c.lease < c.timeout+5*time.Second {
		c.fail("lease duration %s must exceed the attempt timeout %s by at least 5s (WithLeaseDuration)", c.lease, c.timeout)
	}
	if c.endpointLimit > c.workers {
		c.fail("WithEndpointConcurrency(%d) exceeds the worker count %d", c.endpointLimit, c.workers)
	}
	if c.store != nil && c.queueCapacity != 0 {
		c.fail("WithQueueCapacity applies to the default memory store only; bound the store given to WithStore instead")
	}
	return errors.Join(c.errs...)
}

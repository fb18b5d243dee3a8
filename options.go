package webhook

import (
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"go.uber.org/zap"
)

// Option configures a Sender. Options are applied in order by NewSender; only this
// package defines them.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithEndpoints registers endpoints at construction. More can be added at run time with
// AddEndpoint. May be given several times.
func WithEndpoints(eps ...Endpoint) Option {
	return optionFunc(func(c *config) { c.endpoints = append(c.endpoints, eps...) })
}

// WithStore sets where deliveries are kept. The default is a MemoryStore of
// WithQueueCapacity deliveries, lost when the process exits; use a durable store to keep
// them across restarts. The Sender does not close the store.
func WithStore(s Store) Option {
	return optionFunc(func(c *config) {
		if s == nil {
			c.fail("WithStore(nil); omit the option for the in-memory default")
		}
		c.store = s
	})
}

// WithWorkers sets how many attempts run at once. Default DefaultWorkers; must be 1 to
// 10000. The Sender claims as many deliveries again ahead of the workers, so one that
// finishes starts its next attempt at once: a Sender holds up to twice this many
// deliveries leased (more while results are written to a durable store).
func WithWorkers(n int) Option {
	return optionFunc(func(c *config) {
		if n < 1 || n > 10000 {
			c.fail("WithWorkers(%d): must be 1 to 10000", n)
		}
		c.workers = n
	})
}

// WithEndpointConcurrency caps how many attempts run at once to any one endpoint, so one
// slow endpoint cannot take every worker (Endpoint.MaxInFlight overrides it per
// endpoint); n must be 1 to the worker count. Zero, the default, is a fair share that
// bends when it would only leave workers idle: an endpoint gets half the workers
// (rounded up) while others have work due, and when nothing else is due it may burst
// to all but an eighth of them (at least one), so a lone busy endpoint is not held
// to half speed and newly due work for others always finds workers that are not tied
// up by it. Its claims yield to other endpoints' again as its attempts finish. While it
// is the only endpoint enabled, no reserve is kept (there is no one to keep it for): it
// may use every worker, and an endpoint added or enabled then finds a worker as soon as
// one of its attempts ends.
func WithEndpointConcurrency(n int) Option {
	return optionFunc(func(c *config) {
		if n < 0 {
			c.fail("WithEndpointConcurrency(%d): must not be negative", n)
		}
		c.endpointLimit = n
	})
}

// WithQueueCapacity bounds the default in-memory store: at most n unfinished deliveries.
// Default DefaultQueueCapacity; -1 means unbounded. It is an error together with
// WithStore (bound that store itself).
func WithQueueCapacity(n int) Option {
	return optionFunc(func(c *config) {
		if n == 0 || n < -1 {
			c.fail("WithQueueCapacity(%d): must be positive, or -1 for unbounded", n)
		}
		c.queueCapacity = n
	})
}

// WithFailFast makes Send return ErrQueueFull at once when the store is full. By
// default Send waits for room until its context is done.
func WithFailFast(on bool) Option {
	return optionFunc(func(c *config) { c.failFast = on })
}

// WithTimeout bounds each attempt, from connecting to reading the response body.
// Default DefaultTimeout; must be positive.
func WithTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d <= 0 {
			c.fail("WithTimeout(%s): must be positive", d)
		}
		c.timeout = d
	})
}

// WithLeaseDuration sets how long a claimed delivery stays leased. Default
// DefaultLeaseDuration; must exceed the attempt timeout by at least 5 seconds, so a
// live attempt never loses its lease. A delivery claimed ahead that waited so long that
// its lease could lapse mid-attempt is handed back and claimed afresh, not started.
func WithLeaseDuration(d time.Duration) Option {
	return optionFunc(func(c *config) { c.lease = d })
}

// WithPollInterval sets how often an idle Sender checks the store for work it was not
// told about. Default DefaultPollInterval; must be positive.
func WithPollInterval(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d <= 0 {
			c.fail("WithPollInterval(%s): must be positive", d)
		}
		c.poll = d
	})
}

// WithRetryPolicy replaces the retry policy. Zero fields of p take their defaults.
func WithRetryPolicy(p RetryPolicy) Option {
	return optionFunc(func(c *config) {
		if err := p.validate(); err != nil {
			c.errs = append(c.errs, err)
		}
		c.retry = p
	})
}

// WithSigner sets the default signer; Endpoint.Signer overrides it per endpoint.
// Default StandardSigner.
func WithSigner(s Signer) Option {
	return optionFunc(func(c *config) {
		if s == nil {
			c.fail("WithSigner(nil); omit the option for StandardSigner")
		}
		c.signer = s
	})
}

// WithVersion sets the current payload version: events without a Version get it, and
// endpoints without a pinned Version receive only events of it. Default DefaultVersion.
func WithVersion(v string) Option {
	return optionFunc(func(c *config) {
		if !validVersion(v) {
			c.fail("WithVersion(%q): must be 1 to 64 printable characters", truncate(v, 64))
		}
		c.version = v
	})
}

// WithVersionHeader names the header that carries the event version. Default
// DefaultVersionHeader.
func WithVersionHeader(name string) Option {
	return optionFunc(func(c *config) {
		if !validHeaderName(name) {
			c.fail("WithVersionHeader(%q): not a valid header name", truncate(name, 64))
		}
		c.versionHeader = name
	})
}

// WithUserAgent sets the User-Agent header. Default DefaultUserAgent.
func WithUserAgent(ua string) Option {
	return optionFunc(func(c *config) { c.userAgent = ua })
}

// WithTransport sets the HTTP transport. The default is a pooled keep-alive transport
// sized to the worker count. Tests pass webhooktest.Transport here to send without a
// network. Redirects are never followed, whatever the transport.
func WithTransport(rt http.RoundTripper) Option {
	return optionFunc(func(c *config) {
		if rt == nil {
			c.fail("WithTransport(nil); omit the option for the default transport")
		}
		c.transport = rt
	})
}

// WithLogger sets the logger. Default: a no-op logger. Log lines carry delivery_id,
// endpoint_id, event_type, attempt, status and latency; never secrets, signatures, URL
// credentials or query strings. Nil means the no-op logger.
func WithLogger(l *zap.Logger) Option {
	return optionFunc(func(c *config) {
		if l == nil {
			l = zap.NewNop()
		}
		c.logger = l
	})
}

// WithHooks sets callbacks for attempts and endpoint changes, for metrics and auditing.
func WithHooks(h Hooks) Option {
	return optionFunc(func(c *config) { c.hooks = h })
}

// WithClock sets the time source. Default SystemClock{}; tests use webhooktest.Clock.
func WithClock(clk Clock) Option {
	return optionFunc(func(c *config) {
		if clk == nil {
			c.fail("WithClock(nil); omit the option for the system clock")
		}
		c.clock = clk
	})
}

// WithMaxPayloadSize caps an event's envelope in bytes; Send rejects larger events with
// ErrPayloadTooLarge. Default DefaultMaxPayloadSize.
func WithMaxPayloadSize(n int) Option {
	return optionFunc(func(c *config) {
		if n < 64 {
			c.fail("WithMaxPayloadSize(%d): must be at least 64 bytes", n)
		}
		c.maxPayload = n
	})
}

// WithMaxEndpointsPerEvent caps how many endpoints one event may fan out to; Send
// rejects an event matching more with ErrInvalidEvent. Default
// DefaultMaxEndpointsPerEvent.
func WithMaxEndpointsPerEvent(n int) Option {
	return optionFunc(func(c *config) {
		if n < 1 {
			c.fail("WithMaxEndpointsPerEvent(%d): must be positive", n)
		}
		c.maxFanout = n
	})
}

// WithResponseLimits sets how many response body bytes are read to reuse the connection
// (drain) and how many are kept in the Attempt (record, at most drain). Defaults
// DefaultResponseDrainBytes and DefaultResponseRecordBytes.
func WithResponseLimits(drain, record int) Option {
	return optionFunc(func(c *config) {
		if drain < 0 || record < 0 || record > drain {
			c.fail("WithResponseLimits(%d, %d): need 0 <= record <= drain", drain, record)
		}
		c.drainBytes, c.recordBytes = int64(drain), record
	})
}

// WithRetention sets how long finished deliveries are kept before the Sender prunes
// them from the store: succeeded ones for succeeded, failed ones for failed. Defaults
// DefaultRetention and DefaultFailedRetention; -1 keeps them forever.
func WithRetention(succeeded, failed time.Duration) Option {
	return optionFunc(func(c *config) {
		if (succeeded <= 0 && succeeded != -1) || (failed <= 0 && failed != -1) {
			c.fail("WithRetention(%s, %s): each must be positive, or -1 to keep forever", succeeded, failed)
		}
		c.retention, c.failedRetention = succeeded, failed
	})
}

// WithAllowedNetworks lets the destination guard connect to addresses in these networks
// although they lie in a blocked range (see ErrDestinationBlocked): for example
// netip.MustParsePrefix("127.0.0.0/8") for a receiver on this machine, or an internal
// network whose endpoints you trust. May be given several times.
func WithAllowedNetworks(networks ...netip.Prefix) Option {
	return optionFunc(func(c *config) {
		for _, n := range networks {
			if !n.IsValid() {
				c.fail("WithAllowedNetworks: invalid prefix %v", n)
				continue
			}
			c.guard.allowed = append(c.guard.allowed, n.Masked())
		}
	})
}

// WithDangerouslyAllowAnyDestination turns the destination guard off: endpoints may then
// reach loopback, private networks and cloud metadata services (169.254.169.254). Only
// for senders whose endpoint URLs are all written by trusted operators, never by
// customers. Prefer WithAllowedNetworks.
func WithDangerouslyAllowAnyDestination() Option {
	return optionFunc(func(c *config) { c.guard.off = true })
}

// WithHTTPSOnly rejects endpoints whose URL is not https:// (ErrInvalidEndpoint).
func WithHTTPSOnly() Option {
	return optionFunc(func(c *config) { c.httpsOnly = true })
}

// WithProxy sends requests through an outgoing proxy chosen per request, as
// http.Transport.Proxy (for example http.ProxyURL(u) or http.ProxyFromEnvironment). The
// destination guard then sees only the proxy's address (allow it with
// WithAllowedNetworks if it is private), and the proxy becomes responsible for refusing
// internal destinations. Default: no proxy; the environment's HTTP_PROXY is ignored.
func WithProxy(proxy func(*http.Request) (*url.URL, error)) Option {
	return optionFunc(func(c *config) { c.proxy = proxy })
}

// WithCircuitBreaker configures the per-endpoint circuit breaker: after threshold
// consecutive failed attempts an endpoint gets no attempts for cooldown, then one probe;
// each failed probe doubles the cool-down up to maxCooldown, a successful one closes the
// circuit. Deliveries wait meanwhile without using up attempts, and the results of
// attempts already in flight when it opened count for nothing. A 429 pauses the endpoint
// and a 410 disables it; neither counts as a failure here. Defaults
// DefaultBreakerThreshold, DefaultBreakerCooldown, DefaultBreakerMaxCooldown; a threshold
// of -1 disables the breaker.
func WithCircuitBreaker(threshold int, cooldown, maxCooldown time.Duration) Option {
	return optionFunc(func(c *config) {
		if threshold == 0 || threshold < -1 || (threshold > 0 && (cooldown <= 0 || maxCooldown < cooldown)) {
			c.fail("WithCircuitBreaker(%d, %s, %s): need threshold >= 1 (or -1 to disable) and 0 < cooldown <= maxCooldown", threshold, cooldown, maxCooldown)
		}
		c.breakerAt, c.breaker = threshold, [2]time.Duration{cooldown, maxCooldown}
	})
}

// WithAutoDisable disables an endpoint whose every attempt has failed for d (its
// pending deliveries are kept, and go out once it is enabled again). Default
// DefaultDisableAfter; -1 never disables.
func WithAutoDisable(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d <= 0 && d != -1 {
			c.fail("WithAutoDisable(%s): must be positive, or -1 to never disable", d)
		}
		c.disableAfter = d
	})
}

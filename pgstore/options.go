package pgstore

import (
	"fmt"
	"regexp"

	"github.com/hooksmith/webhook"
	"go.uber.org/zap"
)

// Store defaults.
const (
	// DefaultSchema is the schema holding the store's tables.
	DefaultSchema = "public"
	// DefaultTablePrefix starts the name of every table and index the store creates.
	DefaultTablePrefix = "hooksmith_"
	// DefaultChannelSuffix ends the default notification channel, which is
	// "<schema>.<prefix>" + DefaultChannelSuffix ("public.hooksmith_work").
	DefaultChannelSuffix = "work"
	// DefaultBatchSize caps how many concurrent Record (or Enqueue) calls are written in
	// one round trip and transaction.
	DefaultBatchSize = 256
)

// Option configures a Store. Only this package defines options; they are applied in order
// by New and Migrations.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	schema    string
	prefix    string
	channel   string
	batchSize int
	logger    *zap.Logger
	errs      []error
}

func newConfig(opts []Option) (config, error) {
	c := config{schema: DefaultSchema, prefix: DefaultTablePrefix, batchSize: DefaultBatchSize, logger: zap.NewNop()}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	if c.channel == "" {
		c.channel = c.schema + "." + c.prefix + DefaultChannelSuffix
		if len(c.channel) > maxIdentifier {
			c.fail("the default notification channel %q is longer than %d bytes; name a shorter one with WithChannel", c.channel, maxIdentifier)
		}
	}
	if len(c.errs) > 0 {
		return c, c.errs[0]
	}
	return c, nil
}

func (c *config) fail(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%w: pgstore: "+format, append([]any{webhook.ErrInvalidOption}, args...)...))
}

// maxIdentifier is PostgreSQL's identifier length limit (NAMEDATALEN-1).
const maxIdentifier = 63

// maxPrefix leaves room for the longest name built from the prefix
// ("deliveries_in_flight_idx").
const maxPrefix = maxIdentifier - len("deliveries_in_flight_idx")

var (
	schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
	prefixName = regexp.MustCompile(`^([a-z_][a-z0-9_]*)?$`)
)

// WithSchema sets the schema holding the store's tables; Migrate creates it if needed.
// Default DefaultSchema. It must be a lowercase SQL identifier ([a-z_][a-z0-9_]*) of at
// most 63 bytes.
func WithSchema(name string) Option {
	return optionFunc(func(c *config) {
		if len(name) > maxIdentifier || !schemaName.MatchString(name) {
			c.fail("WithSchema(%q): must be 1 to %d characters of [a-z0-9_], not starting with a digit", name, maxIdentifier)
		}
		c.schema = name
	})
}

// WithTablePrefix sets the prefix of the store's table and index names, so that several
// stores (or other applications) can share a schema. Default DefaultTablePrefix; empty is
// allowed. It must be [a-z_][a-z0-9_]* of at most 39 bytes.
func WithTablePrefix(prefix string) Option {
	return optionFunc(func(c *config) {
		if len(prefix) > maxPrefix || !prefixName.MatchString(prefix) {
			c.fail("WithTablePrefix(%q): must be at most %d characters of [a-z0-9_], not starting with a digit", prefix, maxPrefix)
		}
		c.prefix = prefix
	})
}

// WithChannel names the LISTEN/NOTIFY channel the store uses to wake Senders when work
// arrives. Every store sharing the tables must use the same channel. Default
// "<schema>.<prefix>work"; 1 to 63 bytes.
func WithChannel(name string) Option {
	return optionFunc(func(c *config) {
		if name == "" || len(name) > maxIdentifier {
			c.fail("WithChannel(%q): must be 1 to %d bytes", name, maxIdentifier)
		}
		c.channel = name
	})
}

// WithBatchSize caps how many concurrent Record calls, and separately how many concurrent
// Enqueue calls, are written together in one round trip and one transaction. Calls are
// never delayed to fill a batch: a batch is whatever queued up while the previous one was
// being written. Default DefaultBatchSize; 1 disables batching.
func WithBatchSize(n int) Option {
	return optionFunc(func(c *config) {
		if n < 1 || n > 10000 {
			c.fail("WithBatchSize(%d): must be 1 to 10000", n)
		}
		c.batchSize = n
	})
}

// WithLogger sets where the store reports background problems, such as a lost LISTEN
// connection being re-established. Default: a no-op logger; nil means the same.
func WithLogger(l *zap.Logger) Option {
	return optionFunc(func(c *config) {
		if l == nil {
			l = zap.NewNop()
		}
		c.logger = l
	})
}

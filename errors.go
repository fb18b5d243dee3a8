package webhook

import (
	"errors"
	"fmt"

	"github.com/hooksmith/webhook/store"
)

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrInvalidEvent is wrapped by every error that rejects an Event passed to Send.
	ErrInvalidEvent = errors.New("webhook: invalid event")
	// ErrInvalidEndpoint is wrapped by every error that rejects an Endpoint.
	ErrInvalidEndpoint = errors.New("webhook: invalid endpoint")
	// ErrInvalidOption is wrapped by every error NewSender returns for a bad option.
	ErrInvalidOption = errors.New("webhook: invalid option")
	// ErrInvalidSecret reports a secret that is not of the form whsec_<base64> (24 to 64
	// bytes) or whsk_<base64 ed25519 private key>.
	ErrInvalidSecret = errors.New("webhook: invalid secret")
	// ErrPayloadTooLarge reports an event whose envelope exceeds the size limit
	// (see WithMaxPayloadSize).
	ErrPayloadTooLarge = errors.New("webhook: payload too large")
	// ErrQueueFull is returned by Send when the store holds as many unfinished
	// deliveries as it may and the Sender was built with WithFailFast (or the context
	// ended while waiting). It is store.ErrQueueFull.
	ErrQueueFull = store.ErrQueueFull
	// ErrClosed is returned by Send and other calls after Close.
	ErrClosed = errors.New("webhook: sender closed")
	// ErrEndpointNotFound reports an endpoint ID that is not registered.
	ErrEndpointNotFound = errors.New("webhook: endpoint not found")
	// ErrEndpointExists reports AddEndpoint with an ID that is already registered.
	ErrEndpointExists = errors.New("webhook: endpoint already exists")
	// ErrEndpointDisabled is returned by SendTo for a disabled endpoint.
	ErrEndpointDisabled = errors.New("webhook: endpoint disabled")
	// ErrNotFound reports a delivery ID the store does not hold. It is store.ErrNotFound.
	ErrNotFound = store.ErrNotFound
	// ErrInvalidState reports an operation that does not apply to the delivery's current
	// state (for example retrying a delivery that is in flight). It is
	// store.ErrInvalidState.
	ErrInvalidState = store.ErrInvalidState
)

// ValidationError says which field of an Event or Endpoint was rejected and why. It wraps
// ErrInvalidEvent or ErrInvalidEndpoint (and, where one applies, a more specific sentinel
// such as ErrInvalidSecret or ErrPayloadTooLarge). Its message never contains a secret.
type ValidationError struct {
	Kind   error  // ErrInvalidEvent or ErrInvalidEndpoint
	ID     string // the endpoint or event ID, when known
	Field  string // the offending field, e.g. "Type", "URL", "Headers[X-Foo]"
	Reason string // what was wrong and how to fix it
	Err    error  // an optional more specific cause (ErrInvalidSecret, ErrPayloadTooLarge)
}

func (e *ValidationError) Error() string {
	what := "event"
	if e.Kind == ErrInvalidEndpoint {
		what = "endpoint"
	}
	if e.ID != "" {
		return fmt.Sprintf("webhook: %s %q: %s: %s", what, e.ID, e.Field, e.Reason)
	}
	return fmt.Sprintf("webhook: %s: %s: %s", what, e.Field, e.Reason)
}

// Unwrap returns the kind sentinel and the specific cause, so errors.Is matches both.
func (e *ValidationError) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Kind, e.Err}
	}
	return []error{e.Kind}
}

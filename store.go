package webhook

import "github.com/hooksmith/webhook/store"

// Store keeps a Sender's deliveries from Send until they are delivered or dead-lettered;
// give one to WithStore. The contract, for those who write a store, is package store
// (github.com/hooksmith/webhook/store); the memory store (NewMemoryStore) is the default,
// and packages filestore and pgstore are durable ones.
type Store = store.Store

// Delivery is one event on its way to one endpoint: see store.Delivery.
type Delivery = store.Delivery

// Attempt is the record of one HTTP request made for a delivery: see store.Attempt.
type Attempt = store.Attempt

// State is where a Delivery is in its life: see store.State.
type State = store.State

// Delivery states.
const (
	StatePending   = store.StatePending
	StateInFlight  = store.StateInFlight
	StateSucceeded = store.StateSucceeded
	StateFailed    = store.StateFailed
)

// ListParams filter Sender.Deliveries: see store.ListParams.
type ListParams = store.ListParams

// ListResult is one page of Sender.Deliveries: see store.ListResult.
type ListResult = store.ListResult

// DefaultListLimit is the page size of Deliveries when ListParams.Limit is zero.
const DefaultListLimit = store.DefaultListLimit

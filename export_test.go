package webhook

// SetRoomWaitHook has s call f each time a Send is about to wait for room, with whether
// that Send holds the poll (its timer armed). Set it before any Send.
func (s *Sender) SetRoomWaitHook(f func(poller bool)) { s.testHookRoomWait = f }

// NewMemoryStoreForTests returns a memory store whose ID index keeps only hashBits bits
// of each ID's hash, so that IDs collide as they would not even in a store of billions,
// and whose intern tables are rebuilt once they reach internBound entries.
func NewMemoryStoreForTests(capacity, hashBits, internBound int) *MemoryStore {
	m := NewMemoryStore(capacity)
	m.byID.mask = 1<<hashBits - 1
	m.internBound = internBound
	return m
}

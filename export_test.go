package webhook

// SetRoomWaitHook has s call f each time a Send is about to wait for room, with whether
// that Send holds the poll (its timer armed). Set it before any Send.
func (s *Sender) SetRoomWaitHook(f func(poller bool)) { s.testHookRoomWait = f }

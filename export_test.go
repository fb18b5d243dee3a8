package webhook

// WaitingForRoom returns how many Sends are waiting for room, for tests that must know
// a Send is waiting before they act.
func (s *Sender) WaitingForRoom() int { return int(s.waiting.Load()) }

// PollingForRoom reports whether a waiting Send holds the poll for room.
func (s *Sender) PollingForRoom() bool { return s.roomPoller.Load() }

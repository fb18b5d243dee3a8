package pgstore

import "time"

// Stepping reports whether claims that exclude endpoints step through the endpoints
// without reading the due window first (see stepFor).
func Stepping(s *Store) bool { return s.stepping() }

// SetStepFor sets how long s steps after a claim finds the due window full, so a test
// need not race stepFor's real second.
func SetStepFor(s *Store, d time.Duration) { s.stepFor = d }

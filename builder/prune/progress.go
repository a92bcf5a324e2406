package prune

import "time"

// Throttle returns a Progress that passes a report on at most once per interval, and the last
// one when any came before: a removal shorter than interval says nothing.
func Throttle(interval time.Duration, now func() time.Time, report Progress) Progress {
	last := now()
	reported := false
	return func(done, total int) {
		t := now()
		if t.Sub(last) >= interval || (done == total && reported) {
			last, reported = t, true
			report(done, total)
		}
	}
}

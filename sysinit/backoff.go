package sysinit

import "time"

// Restart policy for the core. A core that crashes right after start is
// most likely broken by its config or binary; restarting it in a hot loop
// would burn a CPU and flood the log, while a core that ran for a while
// crashed for a transient reason and should come back at once.
const (
	backoffMin   = 10 * time.Millisecond
	backoffMax   = time.Second
	quickCrash   = time.Second      // dying sooner than this counts as crash-looping
	backoffReset = 10 * time.Second // running this long forgets earlier crashes
)

// backoff computes how long to wait before restarting the core.
type backoff struct{ cur time.Duration }

// next returns the delay before the restart that follows a run of the given
// uptime: 0 the first time, then 10 ms doubling up to 1 s while runs stay
// shorter than quickCrash.
func (b *backoff) next(uptime time.Duration) time.Duration {
	if uptime >= backoffReset {
		b.cur = 0
	}
	if uptime >= quickCrash {
		return 0
	}
	d := b.cur
	b.cur = min(max(2*b.cur, backoffMin), backoffMax)
	return d
}

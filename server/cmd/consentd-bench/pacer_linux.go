package main

import (
	"runtime"
	"syscall"
	"time"
)

// The open loop's pacer sleeps on its own OS thread with nanosleep and a
// timer slack of 1 ns. Go's timers wake up to a millisecond late when the
// process is idle (the poller's timeout is in milliseconds), which would add
// up to a millisecond to every latency measured from the schedule. Measured
// on the 2-core machine, idle: nanosleep wakes 25-45 µs late at the median,
// time.Sleep 0.9 ms. Under load, waiting for a CPU adds more; the report
// shows how late the pacer and the workers were.

const prSetTimerSlack = 29 // PR_SET_TIMERSLACK

// precisePacing pins the calling goroutine to its thread for precise
// sleeps; the returned function undoes it.
func precisePacing() (undo func()) {
	runtime.LockOSThread()
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerSlack, 1, 0)
	return func() {
		_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerSlack, 0, 0) // the default again
		runtime.UnlockOSThread()
	}
}

// sleepPrecise sleeps d on the current thread (after precisePacing).
func sleepPrecise(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
	}
}

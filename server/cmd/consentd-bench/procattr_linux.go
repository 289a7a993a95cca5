package main

import "syscall"

// sysProcAttr makes the kernel kill a child if the bench dies without
// stopping it (killed, or a crash), so no Redis or consentd lingers on the
// shared machine.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

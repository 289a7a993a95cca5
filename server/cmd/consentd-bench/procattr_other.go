//go:build !linux

package main

import "syscall"

// sysProcAttr: only Linux can tie a child's life to its parent's; elsewhere
// the bench's own clean-up is all there is (and /proc, which the bench reads,
// is Linux's anyway).
func sysProcAttr() *syscall.SysProcAttr { return nil }

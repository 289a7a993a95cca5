//go:build !linux

package main

import "time"

func precisePacing() (undo func()) { return func() {} }

func sleepPrecise(d time.Duration) { time.Sleep(d) }

package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// children are the processes the bench started (Redis, consentd, the
// ceiling). Every one is killed when the bench ends, however it ends: stopAll
// runs on return, on error and on Ctrl-C, and the kernel kills them if the
// bench itself is killed (Pdeathsig, procattr_linux.go).
type children struct {
	mu   sync.Mutex
	list []*child
}

type child struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // Wait's result, once exited is closed
}

// start runs cmd and registers it.
func (c *children) start(name string, cmd *exec.Cmd) (*child, error) {
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	ch := &child{name: name, cmd: cmd, exited: make(chan struct{})}
	go func() {
		ch.err = cmd.Wait()
		close(ch.exited)
	}()
	c.mu.Lock()
	c.list = append(c.list, ch)
	c.mu.Unlock()
	return ch, nil
}

// stopAll stops every child still running, the last started first.
func (c *children) stopAll() {
	c.mu.Lock()
	list := c.list
	c.list = nil
	c.mu.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		list[i].stop(5 * time.Second)
	}
}

func (ch *child) pid() int { return ch.cmd.Process.Pid }

// alive reports whether the process has not exited.
func (ch *child) alive() bool {
	select {
	case <-ch.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM, and SIGKILL if the process has not exited after
// grace. It returns once the process has exited.
func (ch *child) stop(grace time.Duration) {
	if !ch.alive() {
		return
	}
	_ = ch.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-ch.exited:
	case <-time.After(grace):
		_ = ch.cmd.Process.Kill()
		<-ch.exited
	}
}

// --- /proc ---------------------------------------------------------------------

// clockTicks is the kernel's USER_HZ, the unit of utime and stime in
// /proc/<pid>/stat: AT_CLKTCK from our own auxiliary vector, 100 if it
// cannot be read (the value on every mainstream Linux).
var clockTicks = func() int64 {
	auxv, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		return 100
	}
	const atClkTck = 17
	for i := 0; i+16 <= len(auxv); i += 16 {
		if binary.NativeEndian.Uint64(auxv[i:]) == atClkTck {
			if v := int64(binary.NativeEndian.Uint64(auxv[i+8:])); v > 0 {
				return v
			}
		}
	}
	return 100
}()

// cpuTime is the CPU time (user + system) the process has used so far.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// fields are counted after the last ')'. utime and stime are fields 14
	// and 15; after ')' the first field is the state, field 3.
	rest := b[bytes.LastIndexByte(b, ')')+1:]
	fields := strings.Fields(string(rest))
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration((utime + stime) * int64(time.Second) / clockTicks), nil
}

// machineBusy is the CPU time all CPUs have spent on anything but idling
// and waiting for I/O since boot (the "cpu" line of /proc/stat).
func machineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line)
	if len(fields) < 6 || fields[0] != "cpu" {
		return 0, errors.New("/proc/stat: no cpu line")
	}
	var busy int64
	for i, f := range fields[1:] {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %w", err)
		}
		if i != 3 && i != 4 && i < 8 { // not idle, not iowait, not guest (already in user)
			busy += v
		}
	}
	return time.Duration(busy * int64(time.Second) / clockTicks), nil
}

// statusKB reads a "Name:   123 kB" line of /proc/<pid>/status (VmHWM,
// VmRSS), in bytes.
func statusKB(pid int, name string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, name)
}

// freePort asks the kernel for a free loopback port. Another process may take
// it before ours binds it: callers retry with another.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

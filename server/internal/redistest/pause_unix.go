//go:build unix

package redistest

import "syscall"

// Pause stops the process (SIGSTOP): Redis stalled, as under a long fork, a
// swapped-out or frozen host. The kernel still accepts connections on its
// port and takes what clients send into its buffers, but nothing is
// answered until Resume. Killing a paused process still works, so a test
// that ends paused leaves nothing behind.
func (p *Process) Pause() { p.signal(syscall.SIGSTOP) }

// Resume continues a paused process (SIGCONT).
func (p *Process) Resume() { p.signal(syscall.SIGCONT) }

func (p *Process) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.killed || p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
}

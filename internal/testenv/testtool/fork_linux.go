package main

import (
	"syscall"
)

// forkWaiters starts up to n child processes that block until they are
// killed, as a fork bomb does, and returns how many started and the error
// that stopped it early. The children are bare forks (no exec, no Go
// runtime of their own): they only ever make one raw system call, which
// blocks.
func forkWaiters(n int) (int, error) {
	for i := range n {
		pid, _, errno := syscall.RawSyscall(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD), 0, 0)
		if errno != 0 {
			return i, errno
		}
		if pid == 0 { // the child: wait forever (ppoll with no descriptors and no timeout)
			for {
				syscall.RawSyscall6(syscall.SYS_PPOLL, 0, 0, 0, 0, 0, 0)
			}
		}
	}
	return n, nil
}

package daemon

import "golang.org/x/sys/unix"

// totalMemory is the machine's physical memory in bytes.
func totalMemory() uint64 {
	var info unix.Sysinfo_t
	if unix.Sysinfo(&info) != nil {
		return 0
	}
	return uint64(info.Totalram) * uint64(info.Unit)
}

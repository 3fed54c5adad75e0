//go:build !linux

package daemon

// totalMemory is unknown on this platform.
func totalMemory() uint64 { return 0 }

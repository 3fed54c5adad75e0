//go:build unix

package runner

import (
	"io/fs"
	"os"
	"syscall"
)

// fileOwner is who owns the file info describes.
func fileOwner(info fs.FileInfo) (uid, gid int, ok bool) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(st.Uid), int(st.Gid), true
}

// processOwner is the orchestrator's user, and whether it may give files
// to any other (it is root).
func processOwner() (o owner, privileged bool) {
	return owner{uid: os.Getuid(), gid: os.Getgid()}, os.Geteuid() == 0
}

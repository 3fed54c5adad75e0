//go:build linux

package gitrepo

import (
	"io/fs"
	"syscall"
	"time"
)

// statOf returns what git's index records of a file beyond its size, mode
// and mtime: the change time, device and inode (as git, truncated to 32
// bits), and the owner.
func statOf(fi fs.FileInfo) fileStat {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileStat{}
	}
	return fileStat{known: true, ctime: time.Unix(st.Ctim.Unix()), dev: uint32(st.Dev), ino: uint32(st.Ino), uid: st.Uid, gid: st.Gid}
}

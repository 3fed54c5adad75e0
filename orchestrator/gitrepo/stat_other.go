//go:build !linux

package gitrepo

import "io/fs"

// statOf knows only size, mode and mtime on this platform.
func statOf(fs.FileInfo) fileStat { return fileStat{} }

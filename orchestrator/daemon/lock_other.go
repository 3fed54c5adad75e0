//go:build !unix

package daemon

// lockDataDir does nothing where flock is missing: two orchestrators on
// one data directory are not detected there.
func lockDataDir(string, *cleanup) error { return nil }

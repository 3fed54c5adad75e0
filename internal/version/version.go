// Package version holds mao's release version, shown by both binaries and
// recorded in each site's membership record.
package version

// Version is mao's release version.
const Version = "0.1.0-dev"

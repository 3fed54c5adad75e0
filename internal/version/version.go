package version

// Version is mao's release version.
const Version = "0.1.0-dev"

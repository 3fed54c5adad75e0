package container

import (
	"context"
	"time"
)

// Mount is a bind mount of a host path into the container.
type Mount struct {
	Source   string // absolute host path
	Target   string // path in the container
	ReadOnly bool
}

// Spec describes one container run.
type Spec struct {
	Name     string            // container name, e.g. "mao-<runid>"; "" lets the engine pick one
	Image    string            // reference or ID of a local image
	Cmd      []string          // replaces the image CMD when non-empty; the entrypoint is kept
	Env      []string          // "K=V"
	Labels   map[string]string // container labels
	Mounts   []Mount           // bind mounts; the Docker socket is refused
	NanoCPUs int64             // CPU limit in 1e-9 CPUs, 0 = none
	Memory   int64             // memory limit in bytes, 0 = none
	// PidsLimit is the most processes and threads the container may have
	// at once, 0 = none.
	PidsLimit int64
	// User is "UID" or "UID:GID", numeric, that the container's process
	// runs as; "" = the image's user.
	User    string
	Network string        // "bridge", "none", "host" or a network name; "" = engine default
	Timeout time.Duration // the container is stopped after this long, 0 = never
	// Ready, when set, is called once the container is created, before it
	// starts, on the goroutine that called Run: what the creation does not
	// need (the sync of the folders it mounts) goes on meanwhile, off the
	// path to the start. An error from Ready removes the container, and
	// Run returns that error as it is.
	Ready func(ctx context.Context) error
}

// Image identifies a local image.
type Image struct {
	ID string
	// Digest is the first repository digest ("name@sha256:..."), or "" for
	// an image that was built locally and never pushed or pulled.
	Digest string
}

// Exit is how a container ended.
type Exit struct {
	Code        int  // exit code
	TimedOut    bool // stopped because Spec.Timeout elapsed
	ContainerID string
	StartedAt   time.Time // when the engine had started the container; zero if it never started
}

// Difference is a path at which two commits of a clone differ: A or B is
// nil where that commit holds no file there.
type Difference struct {
	Path string
	A, B *Blob
}

// Blob is a file's size and SHA-256 (hex).
type Blob struct {
	Size   int64
	SHA256 string
}

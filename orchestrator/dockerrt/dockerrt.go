package dockerrt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	dcontainer "github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
	"github.com/jonboulle/clockwork"

	"github.com/mao-research/mao/orchestrator/container"
)

// defaultStopGrace is how long a container gets between SIGTERM and SIGKILL
// when Options.StopGrace is not set (the same as `docker stop`).
const defaultStopGrace = 10 * time.Second

// Options configure a Runtime.
type Options struct {
	// Host is the engine address, e.g. "unix:///var/run/docker.sock".
	// Empty means the Docker client default (DOCKER_HOST and friends).
	Host string
	// StopGrace is the time between SIGTERM and SIGKILL when a container is
	// stopped on timeout or cancellation. Zero or less means 10s.
	StopGrace time.Duration
	// Clock stamps the time a container started and times a run's
	// timeout; default the real clock.
	Clock clockwork.Clock
}

// Runtime runs tool containers on one Docker engine. It is safe for
// concurrent use.
type Runtime struct {
	c     *client.Client
	grace time.Duration
	clock clockwork.Clock
}

// New returns a Runtime for the engine opts name. It does not contact the
// engine: the API version is negotiated on the first request.
func New(opts Options) (*Runtime, error) {
	clientOpts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if opts.Host != "" {
		clientOpts = append(clientOpts, client.WithHost(opts.Host))
	}
	c, err := client.NewClientWithOpts(clientOpts...)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	grace := opts.StopGrace
	if grace <= 0 {
		grace = defaultStopGrace
	}
	clock := opts.Clock
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	return &Runtime{c: c, grace: grace, clock: clock}, nil
}

// Close releases the engine connections.
func (r *Runtime) Close() error { return r.c.Close() }

// Version returns the engine version, e.g. "20.10.24".
func (r *Runtime) Version(ctx context.Context) (string, error) {
	v, err := r.c.ServerVersion(ctx)
	if err != nil {
		return "", fmt.Errorf("docker version: %w", err)
	}
	return v.Version, nil
}

// EnsureImage returns the local image ref names, pulling it first when it is
// not present.
func (r *Runtime) EnsureImage(ctx context.Context, ref string) (container.Image, error) {
	img, err := r.c.ImageInspect(ctx, ref)
	if cerrdefs.IsNotFound(err) {
		if err := r.pull(ctx, ref); err != nil {
			return container.Image{}, fmt.Errorf("pull %s: %w", ref, err)
		}
		img, err = r.c.ImageInspect(ctx, ref)
	}
	if err != nil {
		return container.Image{}, fmt.Errorf("inspect image %s: %w", ref, err)
	}
	out := container.Image{ID: img.ID}
	if len(img.RepoDigests) > 0 {
		out.Digest = img.RepoDigests[0]
	}
	return out, nil
}

// CheckImage tells whether ref can run here without running anything: nil
// when the image is present, or when its registry answers for it (a
// manifest lookup, no pull); else why not.
func (r *Runtime) CheckImage(ctx context.Context, ref string) error {
	_, err := r.c.ImageInspect(ctx, ref)
	if err == nil {
		return nil
	}
	if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("inspect image %s: %w", ref, err)
	}
	if _, err := r.c.DistributionInspect(ctx, ref, ""); err != nil {
		return fmt.Errorf("image %s is not here and its registry does not offer it: %w", ref, err)
	}
	return nil
}

// pull pulls ref, reading the progress stream to its end: the engine reports
// most pull failures inside the stream, not in the HTTP status.
func (r *Runtime) pull(ctx context.Context, ref string) error {
	rc, err := r.c.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return err
	}
	defer rc.Close()
	return jsonmessage.DisplayJSONMessagesStream(rc, io.Discard, 0, false, nil)
}

// RemoveLabelled force-removes every container, running or not, that has the
// label key=value, and returns how many it removed.
func (r *Runtime) RemoveLabelled(ctx context.Context, key, value string) (int, error) {
	if key == "" {
		return 0, errors.New("remove labelled containers: empty label key")
	}
	label := key + "=" + value
	list, err := r.c.ContainerList(ctx, dcontainer.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", label)),
	})
	if err != nil {
		return 0, fmt.Errorf("list containers labelled %s: %w", label, err)
	}
	n := 0
	var errs []error
	for _, c := range list {
		err := r.c.ContainerRemove(ctx, c.ID, dcontainer.RemoveOptions{Force: true, RemoveVolumes: true})
		switch {
		case err == nil:
			n++
		case !cerrdefs.IsNotFound(err): // already gone: nothing to do
			errs = append(errs, fmt.Errorf("remove container %s: %w", c.ID, err))
		}
	}
	return n, errors.Join(errs...)
}

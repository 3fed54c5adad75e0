package dockerrt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	dcontainer "github.com/docker/docker/api/types/container"

	"github.com/docker/docker/pkg/stdcopy"

	"github.com/mao-research/mao/orchestrator/container"
)

// cleanupTimeout bounds each clean-up step (force removal, and waiting for
// the engine to remove a container after it was stopped), so that a hung
// engine cannot hang Run forever.
const cleanupTimeout = 30 * time.Second

// Run runs spec to completion like `docker run --rm` and copies the
// container's stdout and stderr into logw (nil discards them) as they
// arrive.
//
// When spec.Timeout elapses the container is stopped (SIGTERM, then SIGKILL
// after the stop grace) and Run returns TimedOut with the exit code the
// container got. When ctx ends the container is stopped the same way and
// Run returns ctx's error. On every path the container has been removed
// and all of its output written to logw when Run returns.
func (r *Runtime) Run(ctx context.Context, spec container.Spec, logw io.Writer) (container.Exit, error) {
	cfg, hc, err := containerConfig(spec, r.c.DaemonHost())
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return container.Exit{}, fmt.Errorf("run %s: %w", describe(spec), err)
	}
	if logw == nil {
		logw = io.Discard
	}
	created, err := r.c.ContainerCreate(ctx, cfg, hc, nil, nil, spec.Name)
	if err != nil {
		if ctx.Err() != nil && spec.Name != "" {
			// The engine may have created it before noticing ctx.
			err = errors.Join(ctx.Err(), r.forceRemove(ctx, spec.Name))
		}
		return container.Exit{}, fmt.Errorf("run %s: create: %w", describe(spec), err)
	}
	exit, err := r.runCreated(ctx, created.ID, spec.Timeout, logw)
	if err != nil {
		return exit, fmt.Errorf("run %s: %w", describe(spec), err)
	}
	return exit, nil
}

// describe names the run in errors.
func describe(s container.Spec) string {
	if s.Name != "" {
		return s.Name
	}
	return s.Image
}

// runCreated attaches to the created container id, runs it and makes sure
// it is gone.
func (r *Runtime) runCreated(ctx context.Context, id string, timeout time.Duration, logw io.Writer) (container.Exit, error) {
	exit := container.Exit{ContainerID: id}
	attach, err := r.c.ContainerAttach(ctx, id, dcontainer.AttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		return exit, errors.Join(fmt.Errorf("attach: %w", ctxErr(ctx, err)), r.forceRemove(ctx, id))
	}
	defer attach.Close()
	copied := make(chan error, 1)
	go func() { copied <- copyOutput(logw, attach.Reader) }()

	var removed bool
	exit.Code, exit.TimedOut, removed, err = r.supervise(ctx, id, timeout, &exit.StartedAt)
	if !removed {
		err = errors.Join(err, r.forceRemove(ctx, id))
		// Output is forfeit on this path; closing ends the copy for sure.
		attach.Close()
	}
	if copyErr := <-copied; err == nil && copyErr != nil {
		err = fmt.Errorf("copy output: %w", copyErr)
	}
	return exit, err
}

// supervise starts container id and waits until the engine has removed it
// (HostConfig.AutoRemove), stopping it first when timeout elapses or ctx
// ends. removed reports whether the container is known to be gone; err is
// ctx's error when ctx ended the run.
func (r *Runtime) supervise(ctx context.Context, id string, timeout time.Duration, started *time.Time) (code int, timedOut, removed bool, err error) {
	waitCtx, stopWaiting := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWaiting()
	// Register the wait before starting, like the docker CLI, so that a
	// container that exits at once cannot be missed.
	removal := r.waitRemoved(waitCtx, id)
	if err := r.c.ContainerStart(ctx, id, dcontainer.StartOptions{}); err != nil {
		return 0, false, false, fmt.Errorf("start: %w", ctxErr(ctx, err))
	}
	*started = r.clock.Now()

	var deadline <-chan time.Time
	if timeout > 0 {
		t := r.clock.NewTimer(timeout)
		defer t.Stop()
		deadline = t.Chan()
	}
	select {
	case w := <-removal:
		return w.code, false, w.err == nil, w.err
	case <-deadline:
		timedOut = true
	case <-ctx.Done():
	}

	// Timed out or cancelled: stop the container, then wait for the engine
	// to remove it.
	cleanupCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.grace+cleanupTimeout)
	defer cancel()
	if err := r.stop(cleanupCtx, id); err != nil {
		return 0, timedOut, false, err
	}
	select {
	case w := <-removal:
		if w.err == nil && !timedOut {
			return w.code, false, true, ctx.Err()
		}
		return w.code, timedOut, w.err == nil, w.err
	case <-cleanupCtx.Done():
		return 0, timedOut, false, fmt.Errorf("wait for removal after stop: %w", cleanupCtx.Err())
	}
}

// waited is the outcome of waiting for a container's removal.
type waited struct {
	code int
	err  error // the wait failed, or the container ended but was not removed
}

// waitRemoved registers, before returning, a wait for the removal of
// container id. The outcome arrives on the returned channel, which is
// buffered so that nothing leaks when nobody reads it; cancelling ctx ends
// the wait.
func (r *Runtime) waitRemoved(ctx context.Context, id string) <-chan waited {
	resC, errC := r.c.ContainerWait(ctx, id, dcontainer.WaitConditionRemoved)
	out := make(chan waited, 1)
	go func() {
		select {
		case res := <-resC:
			w := waited{code: int(res.StatusCode)}
			if res.Error != nil {
				w.err = fmt.Errorf("wait: %s", res.Error.Message)
			}
			out <- w
		case err := <-errC:
			out <- waited{err: fmt.Errorf("wait: %w", err)}
		}
	}()
	return out
}

// stop stops container id, giving it the stop grace between SIGTERM and
// SIGKILL.
func (r *Runtime) stop(ctx context.Context, id string) error {
	secs := int(math.Ceil(r.grace.Seconds()))
	err := r.c.ContainerStop(ctx, id, dcontainer.StopOptions{Timeout: &secs})
	if err == nil || cerrdefs.IsNotFound(err) || cerrdefs.IsConflict(err) {
		return nil // stopped, or already being removed
	}
	return fmt.Errorf("stop: %w", err)
}

// forceRemove kills and removes container idOrName, even when ctx has
// ended.
func (r *Runtime) forceRemove(ctx context.Context, idOrName string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	err := r.c.ContainerRemove(ctx, idOrName, dcontainer.RemoveOptions{Force: true, RemoveVolumes: true})
	// Conflict: the engine is already removing it (AutoRemove).
	if err == nil || cerrdefs.IsNotFound(err) || cerrdefs.IsConflict(err) {
		return nil
	}
	return fmt.Errorf("remove container %s: %w", idOrName, err)
}

// ctxErr returns ctx's error when ctx has ended (the likely cause of err),
// else err.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// copyOutput demultiplexes the attach stream into w. If w fails it keeps
// draining the stream so that the container never blocks on its output.
func copyOutput(w io.Writer, stream io.Reader) error {
	_, err := stdcopy.StdCopy(w, w, stream)
	if err != nil {
		_, _ = io.Copy(io.Discard, stream)
	}
	return err
}

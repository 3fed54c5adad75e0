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
// The container starts as soon as it is created and spec.Ready, if set,
// has returned nil; its output is read from the log driver, followed from
// the start, so that nothing waits on an attachment before the start and
// no byte is lost. Run removes the
// container once it has ended and its log has been read.
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
	if spec.Ready != nil {
		if err := spec.Ready(ctx); err != nil {
			if rmErr := r.forceRemove(context.WithoutCancel(ctx), created.ID); rmErr != nil {
				err = errors.Join(err, rmErr)
			}
			return container.Exit{}, err
		}
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

// runCreated starts the created container id, copies its log as it is
// written, waits for it to end (stopping it at the timeout or when ctx
// ends) and removes it.
func (r *Runtime) runCreated(ctx context.Context, id string, timeout time.Duration, logw io.Writer) (container.Exit, error) {
	exit := container.Exit{ContainerID: id}
	// Outlives ctx: after a stop, the log is read to its end.
	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	// Register the wait before starting, like the docker CLI, so that a
	// container that exits at once cannot be missed.
	exited := r.waitExit(bg, id)
	if err := r.c.ContainerStart(ctx, id, dcontainer.StartOptions{}); err != nil {
		return exit, errors.Join(fmt.Errorf("start: %w", ctxErr(ctx, err)), r.forceRemove(ctx, id))
	}
	exit.StartedAt = r.clock.Now()
	copied := make(chan error, 1)
	logs, err := r.c.ContainerLogs(bg, id, dcontainer.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: true})
	if err != nil {
		copied <- fmt.Errorf("read its log: %w", err)
	} else {
		go func() {
			defer logs.Close()
			copied <- copyOutput(logw, logs)
		}()
	}

	var ended bool
	exit.Code, exit.TimedOut, ended, err = r.supervise(ctx, id, timeout, exited)
	if !ended {
		// It may still run: removing it ends its log, and the copy.
		err = errors.Join(err, r.forceRemove(ctx, id))
	}
	if copyErr := <-copied; err == nil && copyErr != nil {
		err = fmt.Errorf("copy output: %w", copyErr)
	}
	if rmErr := r.forceRemove(ctx, id); err == nil {
		err = rmErr
	}
	return exit, err
}

// supervise waits until the started container id has exited, stopping it
// first when timeout elapses or ctx ends. ended reports whether it is
// known to have exited; err is ctx's error when ctx ended the run.
func (r *Runtime) supervise(ctx context.Context, id string, timeout time.Duration, exited <-chan waited) (code int, timedOut, ended bool, err error) {
	var deadline <-chan time.Time
	if timeout > 0 {
		t := r.clock.NewTimer(timeout)
		defer t.Stop()
		deadline = t.Chan()
	}
	select {
	case w := <-exited:
		return w.code, false, w.err == nil, w.err
	case <-deadline:
		timedOut = true
	case <-ctx.Done():
	}

	// Timed out or cancelled: stop the container, then wait for it to
	// exit.
	cleanupCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.grace+cleanupTimeout)
	defer cancel()
	if err := r.stop(cleanupCtx, id); err != nil {
		return 0, timedOut, false, err
	}
	select {
	case w := <-exited:
		if w.err == nil && !timedOut {
			return w.code, false, true, ctx.Err()
		}
		return w.code, timedOut, w.err == nil, w.err
	case <-cleanupCtx.Done():
		return 0, timedOut, false, fmt.Errorf("wait for the container to exit after stop: %w", cleanupCtx.Err())
	}
}

// waited is the outcome of waiting for a container's exit.
type waited struct {
	code int
	err  error // the wait failed
}

// waitExit registers, before returning, a wait for the next exit of
// container id. The outcome arrives on the returned channel, which is
// buffered so that nothing leaks when nobody reads it; cancelling ctx ends
// the wait.
func (r *Runtime) waitExit(ctx context.Context, id string) <-chan waited {
	resC, errC := r.c.ContainerWait(ctx, id, dcontainer.WaitConditionNextExit)
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
	// Conflict: the engine is already removing it.
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

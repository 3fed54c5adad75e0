package dockerrt

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	dcontainer "github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"

	"github.com/mao-research/mao/orchestrator/container"
)

// ErrDockerSocket is returned by Run for a mount that would give the
// container the Docker engine socket.
var ErrDockerSocket = errors.New("mounting the Docker socket is not allowed")

// Capabilities returns the whole capability set of every container: Docker's
// default set is dropped (CapDrop ALL) and only these are added back. They
// are what a process running as root in the container needs to write into
// the bind-mounted data folder with ordinary tools, whoever owns the files
// in it (measured with the test tool, GNU tar and cp, busybox; see
// docs/architecture.md): DAC_OVERRIDE to create and write files in
// directories and files that another user owns, CHOWN for tools that keep
// the owners they copy or unpack (GNU tar as root fails without it), and
// FOWNER to change the mode and times of files that it then no longer
// owns. FSETID was never needed. A container that runs as another user
// than root has no capability at all. The runner takes every file back
// for the orchestrator's user after the run and clears setuid and setgid
// bits, so that what a tool gave away with CHOWN does not stay another
// user's on the host.
func Capabilities() []string { return []string{"CHOWN", "DAC_OVERRIDE", "FOWNER"} }

// securityOpts are set on every container: no process in it can gain
// privileges through setuid or setgid binaries or file capabilities.
func securityOpts() []string { return []string{"no-new-privileges"} }

// containerConfig turns spec into the engine's create request for a
// non-interactive, auto-removed container with mao's security defaults
// (securityOpts, Capabilities). daemonHost is the engine address, whose
// socket is refused as a mount source like the default ones.
func containerConfig(spec container.Spec, daemonHost string) (*dcontainer.Config, *dcontainer.HostConfig, error) {
	if spec.Image == "" {
		return nil, nil, errors.New("no image")
	}
	// Where Docker engines usually listen on Linux, and this one.
	sockets := []string{"/var/run/docker.sock", "/run/docker.sock"}
	if path, ok := strings.CutPrefix(daemonHost, "unix://"); ok {
		sockets = append(sockets, path)
	}
	var mounts []mount.Mount
	for _, m := range spec.Mounts {
		if err := checkMountSource(m.Source, sockets); err != nil {
			return nil, nil, fmt.Errorf("mount %s: %w", m.Source, err)
		}
		mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly})
	}
	cfg := &dcontainer.Config{
		Image:  spec.Image,
		Env:    spec.Env,
		Labels: spec.Labels,
		User:   spec.User,
	}
	if len(spec.Cmd) > 0 {
		cfg.Cmd = spec.Cmd
	}
	hc := &dcontainer.HostConfig{
		// The container starts first and its output is read from its log
		// afterwards, from the start (Run): json-file keeps every byte
		// until Run removes the container, whatever the engine's default
		// driver is.
		LogConfig:   dcontainer.LogConfig{Type: logDriver},
		NetworkMode: dcontainer.NetworkMode(spec.Network),
		Mounts:      mounts,
		// MemorySwap equal to Memory: the limit covers swap too.
		Resources:   dcontainer.Resources{NanoCPUs: spec.NanoCPUs, Memory: spec.Memory, MemorySwap: spec.Memory},
		SecurityOpt: securityOpts(),
		CapDrop:     []string{"ALL"},
		CapAdd:      Capabilities(),
	}
	if spec.PidsLimit > 0 {
		limit := spec.PidsLimit
		hc.PidsLimit = &limit
	}
	return cfg, hc, nil
}

// logDriver is the log driver of every run's container: one the engine
// can read back (ContainerLogs).
const logDriver = "json-file"

// checkMountSource refuses a bind source that is not absolute, or that is
// (or is a directory holding) a Docker socket, following symbolic links.
func checkMountSource(src string, sockets []string) error {
	if !filepath.IsAbs(src) {
		return errors.New("source must be an absolute path")
	}
	for _, p := range withResolved(src) {
		if strings.HasSuffix(p, "docker.sock") {
			return ErrDockerSocket
		}
		for _, sock := range sockets {
			for _, s := range withResolved(sock) {
				if within(s, p) {
					return ErrDockerSocket
				}
			}
		}
	}
	return nil
}

// withResolved returns the cleaned path and, when it differs and exists, the
// path with symbolic links resolved.
func withResolved(path string) []string {
	paths := []string{filepath.Clean(path)}
	if real, err := filepath.EvalSymlinks(path); err == nil && real != paths[0] {
		paths = append(paths, real)
	}
	return paths
}

// within reports whether path is dir or lies under it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

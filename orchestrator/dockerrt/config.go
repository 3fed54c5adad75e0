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

// containerConfig turns spec into the engine's create request for a
// non-interactive, auto-removed container. daemonHost is the engine address,
// whose socket is refused as a mount source like the default ones.
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
		Image:        spec.Image,
		Env:          spec.Env,
		Labels:       spec.Labels,
		AttachStdout: true,
		AttachStderr: true,
	}
	if len(spec.Cmd) > 0 {
		cfg.Cmd = spec.Cmd
	}
	hc := &dcontainer.HostConfig{
		AutoRemove:  true,
		NetworkMode: dcontainer.NetworkMode(spec.Network),
		Mounts:      mounts,
		// MemorySwap equal to Memory: the limit covers swap too.
		Resources: dcontainer.Resources{NanoCPUs: spec.NanoCPUs, Memory: spec.Memory, MemorySwap: spec.Memory},
	}
	return cfg, hc, nil
}

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

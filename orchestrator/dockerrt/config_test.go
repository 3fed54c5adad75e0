package dockerrt

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	dcontainer "github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"

	"github.com/mao-research/mao/orchestrator/container"
)

const defaultHost = "unix:///var/run/docker.sock"

func TestContainerConfig(t *testing.T) {
	spec := container.Spec{
		Name:      "mao-r1",
		Image:     "tool:1",
		Cmd:       []string{"-exit", "3"},
		Env:       []string{"MAO_RUN_ID=r1"},
		Labels:    map[string]string{"mao.run": "r1"},
		Mounts:    []container.Mount{{Source: "/srv/data", Target: "/usr/src/app/data"}, {Source: "/srv/in", Target: "/usr/src/app/input", ReadOnly: true}},
		NanoCPUs:  1_500_000_000,
		Memory:    256 << 20,
		PidsLimit: 64,
		User:      "1000:100",
		Network:   "none",
	}
	pids := int64(64)
	noCmd := spec
	noCmd.Cmd = []string{}
	tests := []struct {
		name    string
		spec    container.Spec
		wantCfg *dcontainer.Config
		wantHC  *dcontainer.HostConfig
	}{
		{
			name: "full",
			spec: spec,
			wantCfg: &dcontainer.Config{
				Image: "tool:1", Cmd: []string{"-exit", "3"}, Env: []string{"MAO_RUN_ID=r1"}, User: "1000:100",
				Labels: map[string]string{"mao.run": "r1"},
			},
			wantHC: &dcontainer.HostConfig{
				LogConfig:   dcontainer.LogConfig{Type: "json-file"},
				NetworkMode: "none",
				Mounts: []mount.Mount{
					{Type: mount.TypeBind, Source: "/srv/data", Target: "/usr/src/app/data"},
					{Type: mount.TypeBind, Source: "/srv/in", Target: "/usr/src/app/input", ReadOnly: true},
				},
				Resources:   dcontainer.Resources{NanoCPUs: 1_500_000_000, Memory: 256 << 20, MemorySwap: 256 << 20, PidsLimit: &pids},
				SecurityOpt: []string{"no-new-privileges"},
				CapDrop:     []string{"ALL"},
				CapAdd:      []string{"CHOWN", "DAC_OVERRIDE", "FOWNER"},
			},
		},
		{
			name: "empty cmd keeps the image cmd",
			spec: noCmd,
			wantCfg: &dcontainer.Config{
				Image: "tool:1", Env: []string{"MAO_RUN_ID=r1"}, User: "1000:100",
				Labels: map[string]string{"mao.run": "r1"},
			},
			wantHC: &dcontainer.HostConfig{
				LogConfig:   dcontainer.LogConfig{Type: "json-file"},
				NetworkMode: "none",
				Mounts: []mount.Mount{
					{Type: mount.TypeBind, Source: "/srv/data", Target: "/usr/src/app/data"},
					{Type: mount.TypeBind, Source: "/srv/in", Target: "/usr/src/app/input", ReadOnly: true},
				},
				Resources:   dcontainer.Resources{NanoCPUs: 1_500_000_000, Memory: 256 << 20, MemorySwap: 256 << 20, PidsLimit: &pids},
				SecurityOpt: []string{"no-new-privileges"},
				CapDrop:     []string{"ALL"},
				CapAdd:      []string{"CHOWN", "DAC_OVERRIDE", "FOWNER"},
			},
		},
		{
			name:    "minimal",
			spec:    container.Spec{Image: "tool:1"},
			wantCfg: &dcontainer.Config{Image: "tool:1"},
			wantHC: &dcontainer.HostConfig{LogConfig: dcontainer.LogConfig{Type: "json-file"}, SecurityOpt: []string{"no-new-privileges"},
				CapDrop: []string{"ALL"}, CapAdd: []string{"CHOWN", "DAC_OVERRIDE", "FOWNER"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, hc, err := containerConfig(tt.spec, defaultHost)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg, tt.wantCfg) {
				t.Errorf("config:\n got %+v\nwant %+v", cfg, tt.wantCfg)
			}
			if !reflect.DeepEqual(hc, tt.wantHC) {
				t.Errorf("host config:\n got %+v\nwant %+v", hc, tt.wantHC)
			}
		})
	}
}

func TestContainerConfigRejects(t *testing.T) {
	dir := t.TempDir()
	engineSock := filepath.Join(dir, "engine", "api.sock")
	if err := os.MkdirAll(filepath.Dir(engineSock), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(engineSock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	alias := filepath.Join(dir, "alias")
	if err := os.Symlink(engineSock, alias); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		image    string
		source   string
		host     string
		isSocket bool
	}{
		{name: "no image", source: "/srv/data", host: defaultHost},
		{name: "relative source", image: "tool:1", source: "data", host: defaultHost},
		{name: "default socket", image: "tool:1", source: "/var/run/docker.sock", host: defaultHost, isSocket: true},
		{name: "run socket", image: "tool:1", source: "/run/docker.sock", host: "tcp://127.0.0.1:2375", isSocket: true},
		{name: "unclean path", image: "tool:1", source: "/var/run/../run//docker.sock", host: defaultHost, isSocket: true},
		{name: "rootless socket", image: "tool:1", source: "/run/user/1000/docker.sock", host: defaultHost, isSocket: true},
		{name: "directory holding the socket", image: "tool:1", source: "/var/run", host: defaultHost, isSocket: true},
		{name: "root", image: "tool:1", source: "/", host: defaultHost, isSocket: true},
		{name: "engine socket", image: "tool:1", source: engineSock, host: "unix://" + engineSock, isSocket: true},
		{name: "engine socket directory", image: "tool:1", source: filepath.Dir(engineSock), host: "unix://" + engineSock, isSocket: true},
		{name: "symlink to engine socket", image: "tool:1", source: alias, host: "unix://" + engineSock, isSocket: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := container.Spec{Image: tt.image, Mounts: []container.Mount{{Source: tt.source, Target: "/x"}}}
			_, _, err := containerConfig(spec, tt.host)
			if err == nil {
				t.Fatal("no error")
			}
			if got := errors.Is(err, ErrDockerSocket); got != tt.isSocket {
				t.Errorf("errors.Is(%v, ErrDockerSocket) = %v, want %v", err, got, tt.isSocket)
			}
		})
	}
}

func TestContainerConfigAllowsNeighbours(t *testing.T) {
	for _, src := range []string{"/var/run/mao", "/srv/docker.socket.d", t.TempDir()} {
		spec := container.Spec{Image: "tool:1", Mounts: []container.Mount{{Source: src, Target: "/x"}}}
		if _, _, err := containerConfig(spec, defaultHost); err != nil {
			t.Errorf("%s: %v", src, err)
		}
	}
}

// Run refuses the socket before talking to the engine, so this needs none.
func TestRunRejectsDockerSocket(t *testing.T) {
	r, err := New(Options{Host: "unix:///nonexistent/docker.sock"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	spec := container.Spec{Name: "mao-sock", Image: "tool:1", Mounts: []container.Mount{{Source: "/var/run/docker.sock", Target: "/var/run/docker.sock"}}}
	if _, err := r.Run(context.Background(), spec, nil); !errors.Is(err, ErrDockerSocket) {
		t.Fatalf("Run = %v, want ErrDockerSocket", err)
	}
}

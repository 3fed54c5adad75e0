package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/version"
	"github.com/mao-research/mao/orchestrator/config"
	"github.com/mao-research/mao/orchestrator/dockerrt"
	"github.com/mao-research/mao/orchestrator/etcdembed"
	"github.com/mao-research/mao/orchestrator/gitrepo"
	"github.com/mao-research/mao/orchestrator/httpapi"
	"github.com/mao-research/mao/orchestrator/runlog"
	"github.com/mao-research/mao/orchestrator/runner"
	"github.com/mao-research/mao/orchestrator/store"
)

// AddrFile is the file in the data directory where a running orchestrator
// writes its API address, so scripts can find a daemon that listens on a
// free port.
const AddrFile = "api.addr"

// Run runs the orchestrator until ctx ends, then shuts it down cleanly. It
// returns an error if the orchestrator cannot start or fails while running.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger) (err error) {
	for _, w := range cfg.Warnings {
		log.Warn("config: " + w)
	}
	if err := os.MkdirAll(cfg.Site.DataDir, 0o755); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	endpoints := cfg.Etcd.Endpoints
	var etcdErr <-chan error
	if cfg.Etcd.Embedded() {
		srv, err := etcdembed.Start(ctx, etcdembed.Options{
			Name: cfg.Site.Name, Dir: filepath.Join(cfg.Site.DataDir, "etcd"),
			ClientURL: cfg.Etcd.ClientURL, PeerURL: cfg.Etcd.PeerURL,
		})
		if err != nil {
			return err
		}
		defer srv.Close()
		endpoints, etcdErr = srv.Endpoints(), srv.Err()
		log.Info("embedded etcd started", "endpoints", endpoints)
	}
	etcd, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: cfg.Etcd.DialTimeout})
	if err != nil {
		return fmt.Errorf("etcd client: %w", err)
	}
	defer etcd.Close()
	st := store.New(etcd, cfg.Etcd.Prefix, cfg.Etcd.RequestTimeout)

	docker, err := dockerrt.New(dockerrt.Options{Host: cfg.Docker.Host, StopGrace: cfg.Runs.StopGrace})
	if err != nil {
		return err
	}
	defer docker.Close()
	logs, err := runlog.Open(cfg.Runs.LogDir)
	if err != nil {
		return err
	}
	run := runner.New(st, st, docker, gitrepo.New(gitrepo.Options{}), runner.Options{
		Site: cfg.Site.Name, DataDir: cfg.Site.DataDir, HostDataDir: cfg.Site.HostDataDir, Logs: logs, Log: log,
	})
	if err := run.Recover(ctx); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		return fmt.Errorf("api listen: %w", err)
	}
	addr := ln.Addr().String()
	member, err := st.Join(ctx, siteRecord(ctx, cfg, addr, docker, log), cfg.Site.LeaseTTL, log)
	if err != nil {
		ln.Close()
		grace, cancel := context.WithTimeout(context.Background(), cfg.Runs.ShutdownGrace)
		defer cancel()
		run.Shutdown(grace) // runs that Recover started
		return err
	}
	handler := httpapi.New(httpapi.Deps{Tools: st, Datasets: st, Runs: st, Launcher: run, Logs: logs,
		Health: &health{site: cfg.Site.Name, store: st, docker: docker}}, cfg.API.Tokens, log)
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	keepCtx, stopKeep := context.WithCancel(context.Background())
	kept := make(chan struct{})
	go func() { defer close(kept); member.Keep(keepCtx, time.Second) }()

	addrFile := filepath.Join(cfg.Site.DataDir, AddrFile)
	if err := os.WriteFile(addrFile, []byte("http://"+addr+"\n"), 0o644); err != nil {
		log.Warn("write the API address file", "err", err)
	}
	defer os.Remove(addrFile)
	log.Info("orchestrator ready", "site", cfg.Site.Name, "api", "http://"+addr, "auth", len(cfg.API.Tokens) > 0)

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err = <-served:
		err = fmt.Errorf("api server: %w", err)
	case err = <-etcdErr:
		err = fmt.Errorf("embedded etcd: %w", err)
	}
	shutdown(srv, run, cfg.Runs.ShutdownGrace, log)
	stopKeep()
	<-kept
	if leaveErr := member.Leave(context.Background()); leaveErr != nil {
		log.Warn("leave", "err", leaveErr)
	}
	log.Info("stopped")
	return err
}

// shutdown stops accepting requests, lets running runs finish within grace
// (then stops and records them), and waits for open requests, such as
// followed logs, to end.
func shutdown(srv *http.Server, run *runner.Runner, grace time.Duration, log *slog.Logger) {
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		ctx, cancel := context.WithTimeout(context.Background(), grace+10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			log.Warn("api shutdown", "err", err)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	run.Shutdown(ctx)
	<-closed
	srv.Close()
}

// siteRecord gathers the facts a site publishes about itself.
func siteRecord(ctx context.Context, cfg config.Config, addr string, docker *dockerrt.Runtime, log *slog.Logger) api.Site {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	dockerVersion, err := docker.Version(ctx)
	if err != nil {
		log.Warn("docker is not reachable; runs will fail until it is", "err", err)
		dockerVersion = "unavailable"
	}
	return api.Site{
		Name:          cfg.Site.Name,
		APIAddr:       "http://" + addr,
		Version:       version.Version,
		OS:            runtime.GOOS,
		Arch:          runtime.GOARCH,
		CPUs:          runtime.NumCPU(),
		MemoryBytes:   totalMemory(),
		DockerVersion: dockerVersion,
		Labels:        cfg.Site.Labels,
		StartedAt:     time.Now().UTC(),
	}
}

// health checks etcd and Docker for GET /api/v1/health.
type health struct {
	site   string
	store  *store.Store
	docker *dockerrt.Runtime
}

func (h *health) Check(ctx context.Context) api.Health {
	out := api.Health{Status: "ok", Site: h.site, Etcd: "ok", Docker: "ok"}
	if err := h.store.Ping(ctx); err != nil {
		out.Status, out.Etcd = "degraded", err.Error()
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := h.docker.Version(ctx); err != nil {
		out.Status, out.Docker = "degraded", err.Error()
	}
	return out
}

var _ httpapi.Health = (*health)(nil)

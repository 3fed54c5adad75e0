// Command etcdmember runs one embedded etcd member, built from the etcd
// server module mao links against, for tests that need a cluster of
// separate processes (internal/testenv.EtcdCluster). Distribution etcd
// packages are often older and cannot join a cluster of this version.
//
// It logs to -log-file and serves until SIGTERM or SIGINT (or, with
// -stdin-lifeline, until its standard input closes) and then stops
// cleanly, exiting 0. It exits 1 when the member fails to start or fails
// while serving.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"go.etcd.io/etcd/server/v3/embed"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "etcdmember:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg := embed.NewConfig()
	var clientURL, peerURL, logFile string
	var lifeline bool
	flag.StringVar(&cfg.Name, "name", cfg.Name, "member name")
	flag.StringVar(&cfg.Dir, "dir", "", "data directory (required)")
	flag.StringVar(&clientURL, "client-url", "", "URL to serve clients on (required)")
	flag.StringVar(&peerURL, "peer-url", "", "URL to serve peers on (required)")
	flag.StringVar(&cfg.InitialCluster, "initial-cluster", "", "every member as name=peer-url,...; default: this member alone")
	flag.StringVar(&cfg.ClusterState, "cluster-state", embed.ClusterStateFlagNew, "new or existing")
	flag.StringVar(&cfg.ClientTLSInfo.CertFile, "cert-file", "", "certificate for clients; with -key-file, -client-url must be https")
	flag.StringVar(&cfg.ClientTLSInfo.KeyFile, "key-file", "", "private key of -cert-file")
	flag.StringVar(&cfg.ClientTLSInfo.TrustedCAFile, "trusted-ca-file", "", "CA that signs client certificates")
	flag.BoolVar(&cfg.ClientTLSInfo.ClientCertAuth, "client-cert-auth", false, "require client certificates signed by -trusted-ca-file")
	flag.StringVar(&logFile, "log-file", "", "etcd's log; default -dir with .log appended")
	flag.BoolVar(&lifeline, "stdin-lifeline", false, "also stop when standard input closes (when the parent dies)")
	flag.Parse()
	if cfg.Dir == "" || clientURL == "" || peerURL == "" {
		return errors.New("-dir, -client-url and -peer-url are required")
	}
	client, err := url.Parse(clientURL)
	if err != nil {
		return fmt.Errorf("-client-url: %w", err)
	}
	peer, err := url.Parse(peerURL)
	if err != nil {
		return fmt.Errorf("-peer-url: %w", err)
	}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*client}, []url.URL{*client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*peer}, []url.URL{*peer}
	if cfg.InitialCluster == "" {
		cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	}
	if logFile == "" {
		logFile = cfg.Dir + ".log"
	}
	cfg.LogOutputs = []string{logFile}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if lifeline {
		// Owned by main: it ends when stdin closes, which the process's
		// exit does at the latest.
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			stop()
		}()
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("start member %s: %w", cfg.Name, err)
	}
	defer e.Close()
	select {
	case <-ctx.Done():
		return nil
	case err := <-e.Err():
		return fmt.Errorf("member %s: %w", cfg.Name, err)
	}
}

package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // schedules' time zones work without a system zone database

	"github.com/mao-research/mao/internal/version"
	"github.com/mao-research/mao/orchestrator/daemon"
)

func main() {
	configPath := flag.String("config", "", "config file (default: $MAO_CONFIG, else ./config.ini if present, else built-in defaults)")
	debug := flag.Bool("debug", false, "log debug messages")
	jsonLog := flag.Bool("log-json", false, "log JSON lines (times in nanoseconds) instead of text")
	showVersion := flag.Bool("version", false, "print the version and exit")
	witness := flag.Bool("witness", false, "run as a witness: only an etcd member of the federation, which votes for its quorum "+
		"(no Docker, no API, no runs); it joins with a join token like a site")
	leave := flag.Bool("leave", false, "leave the federation for good and exit: hand the member's vote to a learner if needed, "+
		"remove the member, the site's records and its etcd user (the site must be stopped; a running site: maoctl federation leave)")
	forceNew := flag.Bool("force-new-cluster", false, "start the embedded etcd member as a new cluster of itself alone, with its data: "+
		"only when every other member is gone for good, for one start (see docs/security.md)")
	flag.Parse()
	if *leave && *forceNew {
		fmt.Fprintln(os.Stderr, "orchestrator: -leave and -force-new-cluster do not go together: recover first, then leave")
		os.Exit(2)
	}
	if *showVersion {
		fmt.Println("mao orchestrator", version.Version)
		return
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	var handler slog.Handler = slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})
	if *jsonLog {
		handler = slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level})
	}
	log := slog.New(handler)

	cfg, path, err := daemon.LoadConfig(*configPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "orchestrator: %v\n", err)
		os.Exit(2)
	}
	if path == "" {
		path = "(none: built-in defaults)"
	}
	log.Info("mao orchestrator starting", "version", version.Version, "config", path, "site", cfg.Site.Name, "data_dir", cfg.Site.DataDir,
		"witness", *witness)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	opts := daemon.Options{Log: log, Witness: *witness, ForceNewCluster: *forceNew}
	if *leave {
		err = daemon.Leave(ctx, cfg, opts)
	} else {
		var d *daemon.Daemon
		if d, err = daemon.Start(ctx, cfg, opts); err == nil {
			err = d.Wait()
		}
	}
	if err != nil {
		log.Error("orchestrator failed", "err", err)
		stop()
		os.Exit(1)
	}
}

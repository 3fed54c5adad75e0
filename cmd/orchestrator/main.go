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
	flag.Parse()
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
	log.Info("mao orchestrator starting", "version", version.Version, "config", path, "site", cfg.Site.Name, "data_dir", cfg.Site.DataDir)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	d, err := daemon.Start(ctx, cfg, daemon.Options{Log: log})
	if err == nil {
		err = d.Wait()
	}
	if err != nil {
		log.Error("orchestrator failed", "err", err)
		stop()
		os.Exit(1)
	}
}

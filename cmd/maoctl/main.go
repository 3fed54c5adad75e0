package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/mao-research/mao/maoctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := maoctl.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	maoctl.PrintError(os.Stderr, err)
	os.Exit(maoctl.ExitCode(err))
}

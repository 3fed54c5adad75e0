//go:build !linux

package main

import "errors"

func forkWaiters(int) (int, error) { return 0, errors.New("-fork needs Linux") }

package benchproc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mao-research/mao/api"
)

// Proc is a running orchestrator.
type Proc struct {
	Cmd    *exec.Cmd
	Client *api.Client
	Addr   string        // the API's base URL
	Load   time.Duration // from process start to the API and the scheduler ready
	Took   string        // what the scheduler's ready line says loading took
	stop   func()
}

// readyWithin bounds a start: an orchestrator not ready by then is killed.
const readyWithin = 2 * time.Minute

// Start runs bin with config and waits until its API and its scheduler are
// ready; an orchestrator that exits first, takes longer than two minutes
// or outlives ctx is killed, and its last log lines are in the error.
func Start(ctx context.Context, bin, config string) (*Proc, error) {
	cmd := exec.Command(bin, "-config", config)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	// Until it is ready, the bound or the end of ctx kills it, which ends
	// the log and so the loop below.
	timeout := time.AfterFunc(readyWithin, func() { cmd.Process.Kill() })
	cancel := context.AfterFunc(ctx, func() { cmd.Process.Kill() })
	apiReady := regexp.MustCompile(`orchestrator ready.* api=(http://\S+)`)
	schedReady := regexp.MustCompile(`scheduler ready.* took=(\S+)`)
	p := &Proc{Cmd: cmd}
	var tail []string
	lines := bufio.NewScanner(stderr)
	for (p.Client == nil || p.Took == "") && lines.Scan() {
		tail = append(tail[max(0, len(tail)-19):], lines.Text())
		if m := apiReady.FindStringSubmatch(lines.Text()); m != nil {
			p.Addr = m[1]
			p.Client, err = api.NewClient(m[1], "", nil)
		}
		if m := schedReady.FindStringSubmatch(lines.Text()); m != nil {
			p.Took = m[1]
		}
	}
	p.Load = time.Since(began)
	if !timeout.Stop() || !cancel() || p.Client == nil || p.Took == "" {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, errors.Join(ctx.Err(), err, fmt.Errorf("the orchestrator did not become ready (it exited, or took over %s); its last log lines:\n%s",
			readyWithin, strings.Join(tail, "\n")))
	}
	exited := make(chan struct{})
	go func() { // drain the log so that the orchestrator never blocks on it
		for lines.Scan() {
		}
		cmd.Wait()
		close(exited)
	}()
	p.stop = sync.OnceFunc(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(time.Minute):
			cmd.Process.Kill()
			<-exited
		}
	})
	return p, nil
}

// Stop sends SIGTERM and waits for the process to exit (a minute, then
// SIGKILL). It may be called more than once.
func (p *Proc) Stop() { p.stop() }

// Usage returns the process's CPU time (utime+stime from /proc/PID/stat, in
// clock ticks of 1/100 s) and its resident memory (VmRSS from
// /proc/PID/status) in bytes.
func (p *Proc) Usage() (ticks, rss int64, err error) {
	pid := p.Cmd.Process.Pid
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	// After the parenthesised command name come fields 3 (state) onwards;
	// utime and stime are fields 14 and 15.
	var utime, stime, kb int64
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(status)
	if len(f) < 13 || m == nil {
		return 0, 0, fmt.Errorf("unexpected /proc/%d/stat or status", pid)
	}
	_, err = fmt.Sscan(f[11]+" "+f[12]+" "+string(m[1]), &utime, &stime, &kb)
	return utime + stime, kb * 1024, err
}

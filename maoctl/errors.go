package maoctl

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/mao-research/mao/api"
)

// Exit statuses other than a tool's own.
const (
	exitError       = 1
	exitUsage       = 2
	exitTimedOut    = 124 // as timeout(1) does
	exitInterrupted = 130 // 128 + SIGINT
)

// usageError is a command line maoctl cannot make sense of. details, when
// any, are one line per invalid option.
type usageError struct {
	err     error
	details []string
}

func (e usageError) Error() string {
	if len(e.details) == 0 {
		return e.err.Error()
	}
	return e.err.Error() + ": " + strings.Join(e.details, "; ")
}

func (e usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return usageError{err: fmt.Errorf(format, args...)}
}

// RunExitError is what Run returns when `tool run --follow` saw the run end
// without success. The command has already printed the run's summary line,
// so PrintError prints nothing for it; Code is the exit status to use: the
// tool's own exit code, 124 when the run timed out, or 1 when the run failed
// without one (for example when its image could not be pulled) or was lost
// with its site.
type RunExitError struct {
	Run  api.Run
	Code int
}

func (e *RunExitError) Error() string { return runSummary(e.Run) }

// ExitCode is the process exit status for an error returned by Run: 0 for
// nil, the tool's code for a *RunExitError, 2 for a usage error, 130 when
// the command was interrupted and 1 otherwise.
func ExitCode(err error) int {
	var runErr *RunExitError
	var usageErr usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &runErr):
		return runErr.Code
	case errors.As(err, &usageErr):
		return exitUsage
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	}
	return exitError
}

// PrintError writes err for a person: one line "maoctl: <message>", then
// one indented line per field problem when the orchestrator rejected a
// record or a command's options are invalid. It prints nothing for nil or
// a *RunExitError.
func PrintError(w io.Writer, err error) {
	var runErr *RunExitError
	if err == nil || errors.As(err, &runErr) {
		return
	}
	msg, details := describe(err)
	fmt.Fprintf(w, "maoctl: %s\n", msg)
	for _, d := range details {
		fmt.Fprintf(w, "  %s\n", d)
	}
}

// describe splits err into a message with a hint on what to do and the
// per-field details of a 400 answer.
func describe(err error) (msg string, details []string) {
	msg = err.Error()
	var usageErr usageError
	if errors.As(err, &usageErr) && len(usageErr.details) > 0 {
		return usageErr.err.Error(), usageErr.details
	}
	var apiErr *api.Error
	if errors.As(err, &apiErr) {
		if len(apiErr.Details) > 0 {
			// api.Error renders its details after ": "; list them below instead.
			msg = strings.TrimSuffix(msg, ": "+strings.Join(apiErr.Details, "; "))
			details = apiErr.Details
		}
		switch apiErr.Status {
		case http.StatusUnauthorized:
			msg += " (check --token or MAO_TOKEN)"
		case http.StatusForbidden:
			if strings.Contains(msg, "needs scope") {
				msg += " (use a token with that scope: --token or MAO_TOKEN)"
			}
		}
		return msg, details
	}
	var opErr *net.OpError
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	switch {
	case (errors.As(err, &opErr) && opErr.Op == "dial") || errors.As(err, &dnsErr):
		msg += " (is the orchestrator running? set --addr or MAO_ADDR)"
	case errors.As(err, &certErr):
		msg += " (for an orchestrator whose certificate a private authority signed, give that authority's certificate: --ca-file or MAO_CA_FILE)"
	}
	return msg, nil
}

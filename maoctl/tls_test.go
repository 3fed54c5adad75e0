package maoctl

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mao-research/mao/internal/testenv"
)

// TestCAFile talks to an orchestrator that serves HTTPS with a certificate
// of a private authority: --ca-file (or MAO_CA_FILE) trusts it, and
// without it the certificate is refused.
func TestCAFile(t *testing.T) {
	caFile, certFile, keyFile := testenv.TLSFiles(t)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/health" || r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, `{"code":"not_found","error":"no"}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"status":"ok","site":"lab-1","etcd":"ok","docker":"ok"}`))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	notPEM := filepath.Join(t.TempDir(), "ca.txt")
	os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600)

	tests := []struct {
		name   string
		args   []string
		env    string // MAO_CA_FILE
		exit   int
		output string // in stdout or stderr
	}{
		{"--ca-file", []string{"--ca-file", caFile}, "", 0, "lab-1"},
		{"MAO_CA_FILE", nil, caFile, 0, "lab-1"},
		{"no authority", nil, "", 1, "certificate signed by unknown authority (for an orchestrator whose certificate a private authority signed, give that authority's certificate: --ca-file or MAO_CA_FILE)"},
		{"not a certificate", []string{"--ca-file", notPEM}, "", 2, "holds no PEM certificate"},
		{"missing file", []string{"--ca-file", notPEM + ".nope"}, "", 2, "--ca-file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("MAO_CA_FILE", tc.env)
			var stdout, stderr bytes.Buffer
			args := append([]string{"--addr", srv.URL, "--token", "tok", "health"}, tc.args...)
			err := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
			PrintError(&stderr, err)
			if code := ExitCode(err); code != tc.exit || !strings.Contains(stdout.String()+stderr.String(), tc.output) {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.exit, stdout.String(), stderr.String())
			}
		})
	}
}

package gitserver

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
)

// SSHServer is an SSH server that runs git-upload-pack and
// git-receive-pack on the repositories, for one user with one key.
type SSHServer struct {
	// Base is the URL of the repositories: ssh://git@127.0.0.1:PORT/ (a
	// repository is at Base + name + ".git").
	Base string
	// KeyFile is the client's private key (OpenSSH format, no
	// passphrase), the only key the server accepts.
	KeyFile string
	// KnownHosts is a known_hosts file naming the server's host key.
	KnownHosts string
	// HostKey is the server's public key.
	HostKey ssh.PublicKey
}

// SSH starts an SSH server on loopback that serves the repositories to
// user "git" with a key it generates, and stops it when the test ends.
func (r *Repos) SSH(t testing.TB) *SSHServer {
	t.Helper()
	dir := t.TempDir()
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hostSigner, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	clientPub, clientPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	allowed, err := ssh.NewPublicKey(clientPub)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(clientPriv, "gitserver test key")
	if err != nil {
		t.Fatal(err)
	}
	s := &SSHServer{KeyFile: filepath.Join(dir, "id_ed25519"), KnownHosts: filepath.Join(dir, "known_hosts"), HostKey: hostSigner.PublicKey()}
	if err := os.WriteFile(s.KeyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	config := &ssh.ServerConfig{PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
		if meta.User() == "git" && bytes.Equal(key.Marshal(), allowed.Marshal()) {
			return nil, nil
		}
		return nil, fmt.Errorf("key refused for %s", meta.User())
	}}
	config.AddHostKey(hostSigner)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	s.Base = "ssh://git@" + addr + "/"
	host, port, _ := net.SplitHostPort(addr)
	line := fmt.Sprintf("[%s]:%s %s", host, port, ssh.MarshalAuthorizedKey(s.HostKey))
	if err := os.WriteFile(s.KnownHosts, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	serve(t, ln, func(conn net.Conn) { r.serveSSH(conn, config) })
	return s
}

// serveSSH serves one SSH connection: sessions whose exec request is a
// git pack command on a repository under the root.
func (r *Repos) serveSSH(conn net.Conn, config *ssh.ServerConfig) {
	defer conn.Close()
	sconn, chans, reqs, err := ssh.NewServerConn(conn, config)
	if err != nil {
		return // a client with the wrong key, or one that went away
	}
	defer sconn.Close()
	go ssh.DiscardRequests(reqs)
	var sessions sync.WaitGroup
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "sessions only")
			continue
		}
		ch, requests, err := nc.Accept()
		if err != nil {
			continue
		}
		sessions.Add(1)
		go func() {
			defer sessions.Done()
			r.session(ch, requests)
		}()
	}
	sessions.Wait()
}

// session runs the session's exec request, if it is git-upload-pack or
// git-receive-pack of a repository under the root, and reports its exit
// status.
func (r *Repos) session(ch ssh.Channel, requests <-chan *ssh.Request) {
	defer ch.Close()
	for req := range requests {
		if req.Type != "exec" {
			_ = req.Reply(req.Type == "env", nil) // git sends GIT_PROTOCOL as env
			continue
		}
		var payload struct{ Command string }
		if ssh.Unmarshal(req.Payload, &payload) != nil {
			_ = req.Reply(false, nil)
			return
		}
		cmd, err := r.packCommand(payload.Command)
		if err != nil {
			_ = req.Reply(false, nil)
			fmt.Fprintln(ch.Stderr(), err)
			exit(ch, 128)
			return
		}
		_ = req.Reply(true, nil)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
		code := 0
		if err := cmd.Run(); err != nil {
			code = 1
			var exitErr *exec.ExitError
			if errors.As(err, &exitErr) {
				code = exitErr.ExitCode()
			}
		}
		_ = ch.CloseWrite()
		exit(ch, code)
		return
	}
}

// packCommand parses "git-upload-pack '/name.git'" (or git-receive-pack)
// into the command to run on the repository under the root.
func (r *Repos) packCommand(line string) (*exec.Cmd, error) {
	prog, arg, ok := strings.Cut(line, " ")
	if !ok || prog != "git-upload-pack" && prog != "git-receive-pack" {
		return nil, fmt.Errorf("only git-upload-pack and git-receive-pack are served, not %q", line)
	}
	path := strings.Trim(arg, "'\"")
	full := filepath.Join(r.Root, filepath.Clean("/"+path))
	if _, err := os.Stat(full); err != nil {
		return nil, fmt.Errorf("no repository %s", path)
	}
	cmd := exec.Command("git", strings.TrimPrefix(prog, "git-"), full)
	cmd.Env = gitEnv()
	return cmd, nil
}

// exit sends the session's exit status.
func exit(ch ssh.Channel, code int) {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(code))
	_, _ = ch.SendRequest("exit-status", false, b[:])
}

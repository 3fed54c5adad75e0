package gitrepo

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
)

// AuthConfig is how a site authenticates to git servers: the [git]
// section of its config file. Every field is optional. Secrets are read
// from the files named here, never from a URL: a repository URL in the
// shared registry carries no credentials.
type AuthConfig struct {
	// SSHKeyFile is the private key (OpenSSH or PEM, without a
	// passphrase) for ssh:// and user@host:path URLs. Without one, the
	// keys of the ssh-agent at $SSH_AUTH_SOCK are offered.
	SSHKeyFile string
	// KnownHostsFile lists the SSH servers' host keys, as OpenSSH's
	// known_hosts does; default ~/.ssh/known_hosts (or $SSH_KNOWN_HOSTS).
	// A server whose key it does not list is refused.
	KnownHostsFile string
	// InsecureIgnoreHostKey turns host key checking off: any server that
	// answers for the host is believed. Only for tests and closed networks.
	InsecureIgnoreHostKey bool
	// CredentialsFile holds HTTPS credentials in git's credential-store
	// format: one URL per line, https://USER:PASSWORD@HOST[:PORT][/PATH],
	// its parts percent-encoded. The first line whose scheme and host
	// (and path, when it has one, as a prefix) match a repository's URL
	// gives its user and password.
	CredentialsFile string
	// CAFile is a PEM bundle of certificate authorities that HTTPS git
	// servers may use besides the system's.
	CAFile string
}

// Auth authenticates a site to git servers; LoadAuth reads one. The zero
// value, and nil, authenticate to nobody: ssh through the agent with the
// default known_hosts, https anonymously.
type Auth struct {
	cfg    AuthConfig
	key    ssh.Signer   // from SSHKeyFile
	hosts  *hostKeys    // from KnownHostsFile; nil: the default files
	creds  []credential // from CredentialsFile
	caPEMs []byte       // from CAFile
}

// credential is one line of a credential-store file.
type credential struct {
	scheme, host, path string // host with its port, if the line gives one
	user, password     string
}

// hostKeys is a parsed known_hosts file.
type hostKeys struct {
	db interface {
		HostKeyCallback() ssh.HostKeyCallback
		HostKeyAlgorithms(hostWithPort string) []string
	}
}

// LoadAuth reads the files cfg names and checks them. Its errors name the
// file and the line, never a secret.
func LoadAuth(cfg AuthConfig) (*Auth, error) {
	a := &Auth{cfg: cfg}
	var problems []error
	if cfg.SSHKeyFile != "" {
		pem, err := os.ReadFile(cfg.SSHKeyFile)
		if err == nil {
			a.key, err = ssh.ParsePrivateKey(pem)
			var pass *ssh.PassphraseMissingError
			if errors.As(err, &pass) {
				err = errors.New("the key has a passphrase; give a key without one (ssh-keygen -p)")
			}
		}
		if err != nil {
			problems = append(problems, fmt.Errorf("ssh key %s: %w", cfg.SSHKeyFile, err))
		}
	}
	if cfg.KnownHostsFile != "" && !cfg.InsecureIgnoreHostKey {
		db, err := gitssh.NewKnownHostsDb(cfg.KnownHostsFile)
		if err != nil {
			problems = append(problems, fmt.Errorf("known hosts %s: %w", cfg.KnownHostsFile, err))
		} else {
			a.hosts = &hostKeys{db: db}
		}
	}
	if cfg.CredentialsFile != "" {
		creds, err := readCredentials(cfg.CredentialsFile)
		if err != nil {
			problems = append(problems, err)
		}
		a.creds = creds
	}
	if cfg.CAFile != "" {
		pems, err := os.ReadFile(cfg.CAFile)
		if err == nil && !bytes.Contains(pems, []byte("-----BEGIN CERTIFICATE-----")) {
			err = errors.New("holds no PEM certificate")
		}
		if err != nil {
			problems = append(problems, fmt.Errorf("CA file %s: %w", cfg.CAFile, err))
		}
		a.caPEMs = pems
	}
	if err := errors.Join(problems...); err != nil {
		return nil, err
	}
	return a, nil
}

// readCredentials parses a credential-store file. Its errors name the
// line, never its content.
func readCredentials(file string) ([]credential, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("credentials file: %w", err)
	}
	var out []credential
	var problems []error
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		c, err := parseCredential(line)
		if err != nil {
			problems = append(problems, fmt.Errorf("credentials file %s, line %d: %w", file, n, err))
			continue
		}
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		problems = append(problems, fmt.Errorf("credentials file %s: %w", file, err))
	}
	return out, errors.Join(problems...)
}

// parseCredential reads one credential-store line. Its errors never quote
// the line: it holds a password.
func parseCredential(line string) (credential, error) {
	u, err := url.Parse(line)
	if err != nil {
		return credential{}, errors.New("is not a URL (want https://USER:PASSWORD@HOST, percent-encoded)")
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return credential{}, errors.New("is not an https:// URL")
	case u.Host == "":
		return credential{}, errors.New("names no host")
	case u.User == nil || u.User.Username() == "":
		return credential{}, errors.New("names no user")
	case u.RawQuery != "" || u.Fragment != "":
		return credential{}, errors.New("has a query or fragment; want https://USER:PASSWORD@HOST[/PATH]")
	}
	password, _ := u.User.Password()
	return credential{scheme: u.Scheme, host: strings.ToLower(u.Host), path: strings.Trim(u.Path, "/"),
		user: u.User.Username(), password: password}, nil
}

// caBundle is the extra certificate authorities for HTTPS remotes.
func (a *Auth) caBundle() []byte {
	if a == nil {
		return nil
	}
	return a.caPEMs
}

// method returns how to authenticate to the repository at rawURL: nil for
// git://, file:// and https without a matching credential.
func (a *Auth) method(rawURL string) (transport.AuthMethod, error) {
	ep, err := transport.NewEndpoint(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", redact(rawURL), err)
	}
	switch ep.Protocol {
	case "ssh":
		return a.sshAuth(ep)
	case "https", "http":
		if a == nil {
			return nil, nil
		}
		host := strings.ToLower(ep.Host)
		if ep.Port != 0 {
			host = net.JoinHostPort(host, strconv.Itoa(ep.Port))
		}
		path := strings.Trim(ep.Path, "/")
		for _, c := range a.creds {
			if c.scheme == ep.Protocol && c.host == host && (c.path == "" || path == c.path || strings.HasPrefix(path, c.path+"/")) {
				return &githttp.BasicAuth{Username: c.user, Password: c.password}, nil
			}
		}
	}
	return nil, nil
}

// sshAuth is the key (or the agent's keys) and the host key check for an
// ssh endpoint.
func (a *Auth) sshAuth(ep *transport.Endpoint) (transport.AuthMethod, error) {
	user := ep.User
	if user == "" {
		user = "git"
	}
	var cfg AuthConfig
	var key ssh.Signer
	if a != nil {
		cfg, key = a.cfg, a.key
	}
	var auth transport.AuthMethod
	var helper *gitssh.HostKeyCallbackHelper
	if key != nil {
		pk := &gitssh.PublicKeys{User: user, Signer: key}
		auth, helper = pk, &pk.HostKeyCallbackHelper
	} else {
		agent, err := gitssh.NewSSHAgentAuth(user)
		if err != nil {
			return nil, fmt.Errorf("no SSH key: set [git] ssh_key_file, or run an ssh-agent: %w", err)
		}
		auth, helper = agent, &agent.HostKeyCallbackHelper
	}
	host := ep.Host
	port := ep.Port
	if port == 0 {
		port = 22
	}
	switch {
	case cfg.InsecureIgnoreHostKey:
		helper.HostKeyCallback = ssh.InsecureIgnoreHostKey()
	case a != nil && a.hosts != nil:
		helper.HostKeyCallback = a.hosts.db.HostKeyCallback()
		helper.HostKeyAlgorithms = a.hosts.db.HostKeyAlgorithms(net.JoinHostPort(host, strconv.Itoa(port)))
	}
	return auth, nil
}

package toolspec

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Registry records are shared by every site through etcd, and the API
// shows them to every token that may read. So a git URL in a record must not
// carry credentials: a site authenticates to a git server with what its own
// config file holds, never with a secret in the shared registry.

// hiddenCredential replaces a password or token in a URL that is shown.
const hiddenCredential = "***"

// scpPasswordRe matches git's scp-like form with a password,
// "user:password@host:path", which git would read as host "user".
var scpPasswordRe = regexp.MustCompile(`^[^:/@]+:[^/@]*@[^:/@]+:`)

// errCredentials is why a git URL with credentials is refused; shown is
// the URL with its secret hidden.
func errCredentials(shown string) error {
	return fmt.Errorf("%q holds credentials (user:password@, or a token as user@ over https); "+
		"git credentials go in the [git] section of each site's config.ini (credentials_file for https, "+
		"ssh_key_file for ssh), not in the shared registry", shown)
}

// checkNoCredentials refuses a git or web URL that carries a password, or,
// for https, http, git and file URLs, any user (a token is often sent as the
// user name). An ssh user without a password, as in ssh://git@host/r or
// git@host:r, is a login name, not a secret, and stays valid.
func checkNoCredentials(s string) error {
	if hasCredentials(s) {
		return errCredentials(RedactURL(s))
	}
	return nil
}

func hasCredentials(s string) bool {
	if !strings.Contains(s, "://") {
		return scpPasswordRe.MatchString(s)
	}
	u, err := url.Parse(s)
	if err != nil {
		_, at := userInfo(s)
		return at >= 0 // url.Parse refuses, say, a bad escape in the user info
	}
	if u.User == nil {
		return false
	}
	_, hasPassword := u.User.Password()
	return hasPassword || !isSSH(u.Scheme)
}

func isSSH(scheme string) bool {
	return strings.EqualFold(scheme, "ssh") || strings.EqualFold(scheme, "git+ssh") || strings.EqualFold(scheme, "ssh+git")
}

// RedactURL returns a git or web URL with its credentials replaced by ***:
// a password, and the user of an https, http, git or file URL (a token is
// often sent as the user name). An ssh login name without a password is
// kept. Only the user info changes; the rest is returned as it is. Records
// written before mao refused credentials may still hold some; the API
// shows them with this.
func RedactURL(s string) string {
	if !strings.Contains(s, "://") {
		if scpPasswordRe.MatchString(s) {
			user, rest, _ := strings.Cut(s, ":")
			_, host, _ := strings.Cut(rest, "@")
			return user + ":" + hiddenCredential + "@" + host
		}
		return s
	}
	info, at := userInfo(s)
	if at < 0 {
		return s
	}
	if u, err := url.Parse(s); err == nil {
		_, hasPassword := u.User.Password()
		switch {
		case u.User == nil || !hasPassword && isSSH(u.Scheme):
			return s
		case hasPassword:
			user, _, _ := strings.Cut(info, ":")
			return s[:at-len(info)] + user + ":" + hiddenCredential + s[at:]
		}
	}
	// A user alone, or user info that url.Parse refuses: hide all of it.
	return s[:at-len(info)] + hiddenCredential + s[at:]
}

// userInfo returns the user info of a URL with "://", as url.Parse finds
// it (before the last '@' of the authority), and the index in s of that
// '@', or -1 without one.
func userInfo(s string) (string, int) {
	i := strings.Index(s, "://") + len("://")
	authority := s[i:]
	if end := strings.IndexAny(authority, "/?#"); end >= 0 {
		authority = authority[:end]
	}
	at := strings.LastIndex(authority, "@")
	if at < 0 {
		return "", -1
	}
	return authority[:at], i + at
}

// schemeURLRe matches the start of a URL with user info inside free text,
// such as a git error message: scheme://userinfo@.
var schemeURLRe = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^\s/@"'<>]+@`)

// RedactText hides the user info of every URL in a free text, such as the
// reason a run failed, which may quote a URL that carried credentials.
func RedactText(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	return schemeURLRe.ReplaceAllString(s, "${1}"+hiddenCredential+"@")
}

// withoutCredentials is s with its user info taken out, for checking a
// record written before credentials were refused: the rest of it must
// still be a valid URL.
func withoutCredentials(s string) string {
	if !hasCredentials(s) {
		return s
	}
	if !strings.Contains(s, "://") {
		_, rest, _ := strings.Cut(s, "@")
		return rest
	}
	info, at := userInfo(s)
	return s[:at-len(info)] + s[at+1:]
}

// ValidateStored checks a tool read from the registry: every rule of
// Validate but the refusal of credentials in its URLs, which a record
// written before that rule may hold (the API shows them hidden).
func (t *Tool) ValidateStored() error {
	c := *t
	c.DataRepo, c.CodeRepo = withoutCredentials(c.DataRepo), withoutCredentials(c.CodeRepo)
	return c.Validate()
}

// CheckStoredGitURL checks a git URL read from a record (a run's
// data_repo), as ValidateStored checks a tool's: credentials that a record
// written before mao refused them may hold aside, it must be a git URL a
// tool record could name.
func CheckStoredGitURL(s string) error {
	return checkGitURL(withoutCredentials(s))
}

// ValidateStored checks a dataset read from the registry, as
// Tool.ValidateStored.
func (d *Dataset) ValidateStored() error {
	c := *d
	c.URL = withoutCredentials(c.URL)
	return c.Validate()
}

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
		"git credentials belong in the site's config file, not in the shared registry", shown)
}

// checkNoCredentials refuses a git or web URL that carries a password, or,
// for https, http, git and file URLs, any user (a token is often sent as the
// user name). An ssh user without a password, as in ssh://git@host/r or
// git@host:r, is a login name, not a secret, and stays valid.
func checkNoCredentials(s string) error {
	if shown := RedactURL(s); shown != s {
		return errCredentials(shown)
	}
	return nil
}

// RedactURL returns a git or web URL with its credentials replaced by ***:
// a password, and the user of an https, http, git or file URL (a token is
// often sent as the user name). An ssh login name without a password is
// kept. Anything else is returned as it is. Records written before mao
// refused credentials may still hold some; the API shows them with this.
func RedactURL(s string) string {
	if !strings.Contains(s, "://") {
		if scpPasswordRe.MatchString(s) {
			user, rest, _ := strings.Cut(s, ":")
			_, host, _ := strings.Cut(rest, "@")
			return user + ":" + hiddenCredential + "@" + host
		}
		return s
	}
	u, err := url.Parse(s)
	if err != nil {
		// url.Parse refuses, say, a bad escape in the user info: hide
		// whatever comes between "://" and the last "@" of the authority.
		return redactAuthority(s)
	}
	if u.User == nil {
		return s
	}
	_, hasPassword := u.User.Password()
	switch {
	case hasPassword:
		u.User = url.UserPassword(u.User.Username(), hiddenCredential)
	case strings.EqualFold(u.Scheme, "ssh") || strings.EqualFold(u.Scheme, "git+ssh") || strings.EqualFold(u.Scheme, "ssh+git"):
		return s // a login name
	default:
		u.User = url.User(hiddenCredential)
	}
	// url.URL.String escapes "*"; the mark reads better as it is.
	return strings.Replace(u.String(), url.QueryEscape(hiddenCredential), hiddenCredential, 1)
}

// redactAuthority hides the user info of a URL that url.Parse refuses.
func redactAuthority(s string) string {
	scheme, rest, _ := strings.Cut(s, "://")
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	at := strings.LastIndex(rest[:end], "@")
	if at < 0 {
		return s
	}
	return scheme + "://" + hiddenCredential + rest[at:]
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

package toolspec

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/distribution/reference"
	"github.com/dustin/go-humanize"
)

var (
	nameRe    = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	envKeyRe  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	networkRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)
	userRe    = regexp.MustCompile(`^([0-9]{1,10})(?::([0-9]{1,10}))?$`)
	// scpLikeRe matches git's scp-like ssh form: [user@]host:path.
	scpLikeRe = regexp.MustCompile(`^(?:[A-Za-z0-9._-]+@)?[A-Za-z0-9][A-Za-z0-9.-]*:[^\s\\]+$`)
)

// Limits on free text, so a record stays a readable etcd value.
const (
	maxShortText = 256
	maxLongText  = 4096
	minMemory    = 6 << 20 // Docker refuses less than 6 MiB
	maxID        = 1<<31 - 1
)

// CheckName reports whether s is a valid tool, dataset or site name:
// lowercase letters, digits, '.', '_' and '-', starting with a letter or
// digit, at most 63 characters. A name is a single etcd key segment, so '/'
// is never allowed.
func CheckName(s string) error {
	switch {
	case s == "":
		return errors.New("is required")
	case strings.Contains(s, "/"):
		return fmt.Errorf("%q must not contain '/'", s)
	case !nameRe.MatchString(s):
		return fmt.Errorf("%q must match %s", s, nameRe)
	}
	return nil
}

// checkImage parses s with the distribution reference grammar that Docker
// itself uses.
func checkImage(s string) error {
	if s == "" {
		return errors.New("is required")
	}
	if _, err := reference.ParseNormalizedNamed(s); err != nil {
		return fmt.Errorf("%q is not a valid image reference: %w", s, err)
	}
	return nil
}

// isGitScheme reports whether a data repository or dataset may use scheme.
func isGitScheme(scheme string) bool {
	switch scheme {
	case "https", "ssh", "git", "file":
		return true
	}
	return false
}

// checkGitURL accepts https, ssh, git and file URLs and git's scp-like
// "user@host:path" form, without credentials (see checkNoCredentials).
func checkGitURL(s string) error {
	if s == "" {
		return errors.New("is required")
	}
	if err := checkNoCredentials(s); err != nil {
		return err
	}
	if err := checkLine(s, maxShortText); err != nil {
		return err
	}
	if strings.ContainsAny(s, " \"'`<>") {
		return fmt.Errorf("%q must not contain spaces or quotes", s)
	}
	if !strings.Contains(s, "://") {
		host, _, _ := strings.Cut(s[strings.Index(s, "@")+1:], ":")
		if isGitScheme(strings.ToLower(host)) || strings.EqualFold(host, "http") {
			return fmt.Errorf("%q looks like a URL without \"//\" after %q", s, host+":")
		}
		if scpLikeRe.MatchString(s) {
			return nil
		}
		return fmt.Errorf("%q is not a git URL (want https://, ssh://, git://, file:// or user@host:path)", s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %w", s, err)
	}
	if !isGitScheme(u.Scheme) {
		return fmt.Errorf("%q: scheme %q is not one of https, ssh, git, file", s, u.Scheme)
	}
	if u.Scheme == "file" {
		if u.Host != "" && u.Host != "localhost" {
			return fmt.Errorf("%q: a file URL names a local path (file:///path)", s)
		}
		if u.Path == "" || u.Path == "/" {
			return fmt.Errorf("%q: a file URL needs a path", s)
		}
		return nil
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", s)
	}
	return nil
}

// checkLinkURL accepts anything checkGitURL accepts, plus http and https web
// addresses: code_repo is informational and often a project page. Neither
// may carry credentials: every reader of the registry sees it.
func checkLinkURL(s string) error {
	if err := checkNoCredentials(s); err != nil {
		return err
	}
	if err := checkGitURL(s); err == nil {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.ContainsAny(s, " \"'`<>") {
		return fmt.Errorf("%q is not a URL (want https://..., a git URL or user@host:path)", s)
	}
	return nil
}

// checkText accepts printable text of at most max bytes. Quotes are fine:
// records are JSON-encoded, never built by string formatting.
func checkText(s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("is %d bytes long; the limit is %d", len(s), max)
	}
	for _, r := range s {
		if r == '\n' || r == '\t' {
			continue
		}
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return fmt.Errorf("contains the control or invalid character %q", r)
		}
	}
	return nil
}

// checkLine is checkText for single-line fields.
func checkLine(s string, max int) error {
	if strings.ContainsAny(s, "\n\t") {
		return errors.New("must be a single line")
	}
	return checkText(s, max)
}

func checkEnvKey(k string) error {
	if !envKeyRe.MatchString(k) {
		return fmt.Errorf("%q is not a valid environment variable name (want %s)", k, envKeyRe)
	}
	return nil
}

// checkDuration parses a Go duration string such as "90s" or "1h30m".
func checkDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (e.g. 90s, 30m, 2h): %w", s, err)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q must be positive", s)
	}
	return d, nil
}

// ParseMemory parses a memory size such as "512MiB", "2GB" or "1048576".
func ParseMemory(s string) (int64, error) {
	n, err := humanize.ParseBytes(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size (e.g. 512MiB, 2GiB): %w", s, err)
	}
	if n < minMemory {
		return 0, fmt.Errorf("%q is below Docker's minimum of 6MiB", s)
	}
	if n > 1<<50 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return int64(n), nil
}

func checkNetwork(s string) error {
	if !networkRe.MatchString(s) {
		return fmt.Errorf("%q is not a network name (bridge, host, none or a user-defined network)", s)
	}
	return nil
}

// parseUser parses "UID" or "UID:GID", numeric; gid is -1 when absent.
// Names are refused: what they mean depends on the image's /etc/passwd,
// and the site must know the ids to hand the data folder over.
func parseUser(s string) (uid, gid int, err error) {
	m := userRe.FindStringSubmatch(s)
	if m == nil {
		return 0, 0, fmt.Errorf("%q is not UID or UID:GID (numbers, e.g. 1000 or 1000:1000; names are not allowed)", s)
	}
	gid = -1
	for i, p := range []*int{&uid, &gid} {
		if m[i+1] == "" {
			continue
		}
		n, err := strconv.Atoi(m[i+1])
		if err != nil || n > maxID {
			return 0, 0, fmt.Errorf("%q: ids go from 0 to %d", s, maxID)
		}
		*p = n
	}
	return uid, gid, nil
}

// CheckBranch applies the parts of git-check-ref-format that matter for a
// branch name given by a user.
func CheckBranch(s string) error {
	bad := s == "" || strings.HasPrefix(s, "-") || strings.HasPrefix(s, "/") || strings.HasSuffix(s, "/") ||
		strings.HasSuffix(s, ".lock") || strings.HasSuffix(s, ".") || strings.Contains(s, "..") ||
		strings.Contains(s, "//") || strings.Contains(s, "@{") || strings.ContainsAny(s, " ~^:?*[\\\"'")
	for _, r := range s {
		if unicode.IsControl(r) {
			bad = true
		}
	}
	if bad {
		return fmt.Errorf("%q is not a valid branch name", s)
	}
	return nil
}

package notify

import (
	"cmp"
	"net"
	"net/url"
	"slices"
	"strings"
)

// hidden replaces a secret.
const hidden = "***"

// Redact hides the secrets of a channel URL, for logs, the API and the
// CLI, keeping what lets people recognise the channel: the scheme, the
// host when it names a server, and harmless settings.
//
//   - user info: a password becomes ***, and so does a user name that
//     stands alone (discord://token@id, teams://group@tenant);
//   - the host, when it is no server name (a webhook ID, an API key: it
//     has no dot, no port, and is not localhost) or the scheme keeps a key
//     there (pushbullet, pushover, ifttt, wecom, notifiarr, discord, teams);
//   - every path segment, but for a few words such as "api", "v1" or
//     "webhook";
//   - every query value, but for settings that are known to carry no
//     secret (from, to, subject, title, disabletls, template, chats, ...);
//     a query key without a value; the fragment.
//
// A URL that does not parse is hidden whole, but for its scheme. When in
// doubt, Redact hides.
func Redact(rawURL string) string {
	s, _ := redact(rawURL)
	return s
}

// Scrub hides, in a text such as an error message, rawURL (replaced by
// its redacted form) and every secret that Redact hides in it, in the
// encodings a URL may give it, and the longer pieces of each (a service
// may split a token into its parts).
// Values shorter than minSecret are left: hiding them would garble the
// text (a path segment "in" in "sending"), and they guard nothing.
func Scrub(rawURL, text string) string {
	redacted, secrets := redact(rawURL)
	if rawURL != "" {
		text = strings.ReplaceAll(text, rawURL, redacted)
	}
	var forms []string
	add := func(s string) {
		forms = append(forms, s, url.PathEscape(s), url.QueryEscape(s),
			strings.TrimPrefix(url.UserPassword("u", s).String(), "u:"))
	}
	for _, s := range secrets {
		if len(s) < minSecret {
			continue
		}
		add(s)
		for _, p := range strings.FieldsFunc(s, separator) {
			if len(p) >= minPiece && p != s {
				add(p)
			}
		}
	}
	// Longer forms first, so that no part of one survives a shorter one.
	slices.SortFunc(forms, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	for _, f := range forms {
		text = strings.ReplaceAll(text, f, hidden)
	}
	return text
}

// minSecret is the length from which scrub hides a value.
const minSecret = 4

// minPiece is the length from which scrub hides a piece of a secret on
// its own: shorter ones would hide common words, and guess nothing.
const minPiece = 6

// separator reports whether r separates the pieces of a secret.
func separator(r rune) bool {
	return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("%_~", r))
}

// secretHost lists the schemes whose host is a key or an ID, never a
// server name.
var secretHost = map[string]bool{
	"discord": true, "ifttt": true, "notifiarr": true, "pushbullet": true, "pushover": true, "teams": true, "wecom": true,
}

// plainHost lists hosts that are words of shoutrrr's URL forms, not keys.
var plainHost = map[string]bool{"telegram": true, "webhook": true, "join": true, "localhost": true}

// plainSegment lists path segments that are words, not keys.
var plainSegment = map[string]bool{
	"api": true, "v1": true, "v2": true, "v3": true, "v4": true, "hook": true, "hooks": true, "webhook": true,
	"webhooks": true, "message": true, "messages": true, "spaces": true, "services": true, "notify": true,
}

// plainQuery lists query keys whose values are settings, not secrets.
var plainQuery = map[string]bool{
	// generic webhook
	"disabletls": true, "template": true, "titlekey": true, "messagekey": true, "method": true, "contenttype": true,
	// e-mail
	"from": true, "fromaddress": true, "fromname": true, "to": true, "toaddresses": true, "subject": true, "auth": true,
	"encryption": true, "usestarttls": true, "starttls": true, "requirestarttls": true, "usehtml": true,
	"clienthost": true, "skiptlsverify": true, "timeout": true,
	// chat and push services
	"title": true, "host": true, "chats": true, "channels": true, "channel": true, "rooms": true, "stream": true,
	"topic": true, "color": true, "botname": true, "icon": true, "notification": true, "preview": true,
	"parsemode": true, "priority": true, "tags": true, "devices": true, "severity": true, "thread_id": true,
}

// redact returns the redacted URL and the secrets it hid.
func redact(rawURL string) (string, []string) {
	scheme, rest, ok := strings.Cut(rawURL, ":")
	if !ok || !validScheme(scheme) {
		return hidden, []string{rawURL}
	}
	prefix := scheme + ":"
	if strings.HasPrefix(rest, "//") {
		prefix += "//"
	}
	u, err := url.Parse(rawURL)
	if err != nil || u.Opaque != "" {
		return prefix + hidden, []string{strings.TrimPrefix(rest, "//")}
	}
	base, _, _ := strings.Cut(strings.ToLower(scheme), "+")

	var b strings.Builder
	var secrets []string
	b.WriteString(prefix)
	if u.User != nil {
		name, raw := u.User.Username(), rawUserinfo(rest)
		if pw, ok := u.User.Password(); ok {
			b.WriteString(url.User(name).String() + ":" + hidden + "@")
			_, rawPw, _ := strings.Cut(raw, ":")
			secrets = append(secrets, pw, rawPw)
		} else {
			b.WriteString(hidden + "@")
			secrets = append(secrets, name, raw)
		}
	}
	if host := u.Hostname(); host != "" {
		if !secretHost[base] && serverName(host, u.Port()) {
			b.WriteString(u.Host)
		} else {
			b.WriteString(hidden)
			if u.Port() != "" {
				b.WriteString(":" + u.Port())
			}
			secrets = append(secrets, host)
		}
	}
	for seg := range strings.SplitSeq(u.EscapedPath(), "/") {
		if seg == "" {
			continue
		}
		b.WriteString("/")
		if plain, err := url.PathUnescape(seg); err == nil && plainSegment[strings.ToLower(plain)] {
			b.WriteString(seg)
			continue
		}
		b.WriteString(hidden)
		secrets = append(secrets, seg, unescapePath(seg))
	}
	if strings.HasSuffix(u.EscapedPath(), "/") {
		b.WriteString("/")
	}
	if u.RawQuery != "" {
		var pairs []string
		for pair := range strings.SplitSeq(u.RawQuery, "&") {
			if pair == "" {
				continue
			}
			key, value, hasValue := strings.Cut(pair, "=")
			name, err := url.QueryUnescape(key)
			switch {
			case err == nil && hasValue && plainQuery[strings.ToLower(name)]:
				pairs = append(pairs, pair)
			case err == nil && hasValue:
				pairs = append(pairs, key+"="+hidden)
				secrets = append(secrets, value, unescapeQuery(value))
			default: // a key alone may be a token
				pairs = append(pairs, hidden)
				secrets = append(secrets, pair, unescapeQuery(pair))
			}
		}
		b.WriteString("?" + strings.Join(pairs, "&"))
	}
	if u.Fragment != "" {
		b.WriteString("#" + hidden)
		secrets = append(secrets, u.Fragment, u.EscapedFragment())
	}
	return b.String(), secrets
}

// validScheme reports whether s is a URL scheme (RFC 3986).
func validScheme(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}

// serverName reports whether a URL's host names a server, rather than
// being a key or an ID.
func serverName(host, port string) bool {
	return port != "" || plainHost[strings.ToLower(host)] || net.ParseIP(host) != nil || strings.Contains(host, ".")
}

// rawUserinfo returns the user info of a URL as written, given what
// follows its scheme's colon.
func rawUserinfo(rest string) string {
	authority := strings.TrimPrefix(rest, "//")
	if i := strings.IndexAny(authority, "/?#"); i >= 0 {
		authority = authority[:i]
	}
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		return authority[:i]
	}
	return ""
}

func unescapePath(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}

func unescapeQuery(s string) string {
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}

package httpapi

import (
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/mao-research/mao/orchestrator/errs"
)

// The API serves programs (maoctl, scripts), not web pages. A browser that
// visits a hostile page must not be able to use it: the page can send
// requests to the API's address, with a form or fetch, and, by DNS
// rebinding, even under a name of its own that resolves to the API. guard
// refuses what such requests look like, before any token is looked at:
//
//   - a Host header that names neither this site nor one of its known
//     names and addresses (421): a rebound name;
//   - an Origin header that is not the API's own origin, and
//     Sec-Fetch-Site cross-site or same-site (403): a request that
//     another page (another port of the same host too) made;
//   - a method other than GET and HEAD without Content-Type:
//     application/json (415): a browser sends that type from another
//     origin only after a CORS preflight, which the API never allows, so
//     forms and no-cors fetches are out.
func (s *Server) guard(r *http.Request) error {
	host := hostOnly(r.Host)
	if !s.knownHost(host) {
		return &misdirected{fmt.Sprintf("this API does not answer to the name %q (Host header); "+
			"if people or sites reach it by that name, add it to [api] hostnames in the site's config", host)}
	}
	if origin := r.Header.Get("Origin"); origin != "" && !sameOrigin(origin, r) {
		return errs.New(errs.ErrForbidden, fmt.Sprintf("requests from the web page at %q are refused: the API answers programs, not other origins", origin))
	}
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "cross-site", "same-site":
		return errs.New(errs.ErrForbidden, "requests that a web page of another origin makes (Sec-Fetch-Site: "+site+") are refused")
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		media, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || media != "application/json" {
			return &unsupported{fmt.Sprintf("%s needs Content-Type: application/json, even without a body (got %q)",
				r.Method, r.Header.Get("Content-Type"))}
		}
	}
	return nil
}

// knownHost reports whether the Host header's host part names this API:
// a loopback address, localhost, or one of the site's names (Options.Hosts).
func (s *Server) knownHost(host string) bool {
	if host == "" {
		return false
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() || host == "localhost" {
		return true
	}
	_, ok := s.hosts[host]
	return ok
}

// hostOnly is the host of a Host header, without its port and brackets,
// lowercased, without a trailing dot.
func hostOnly(hostport string) string {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return normalHost(host)
}

func normalHost(h string) string {
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	if ip := net.ParseIP(h); ip != nil {
		return ip.String() // one spelling of each address
	}
	return h
}

// sameOrigin reports whether origin is the request's own: the same scheme,
// host and port. A missing port is the scheme's default.
func sameOrigin(origin string, r *http.Request) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.Path != "" || u.User != nil {
		return false // includes "null", the origin of sandboxed and file pages
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return strings.EqualFold(u.Scheme, scheme) && hostPort(u.Host, scheme) == hostPort(r.Host, scheme)
}

// hostPort is host:port with the scheme's default port filled in.
func hostPort(hostport, scheme string) string {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = hostport, ""
	}
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[scheme]
	}
	return net.JoinHostPort(hostOnly(host), port)
}

// Hosts returns the names and addresses that the Host header of a request
// to an API listening on listen may carry, besides localhost and loopback
// addresses, which are always allowed: the listen address's host, and,
// when it is a wildcard (0.0.0.0, [::] or none), this machine's host name
// and the addresses of its interfaces as they are now; then extra (the
// site's [api] hostnames).
func Hosts(listen string, extra []string) []string {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		host = listen
	}
	var out []string
	ip := net.ParseIP(host)
	if host != "" && (ip == nil || !ip.IsUnspecified()) {
		out = append(out, host)
	} else {
		if name, err := os.Hostname(); err == nil {
			out = append(out, name)
		}
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if n, ok := a.(*net.IPNet); ok {
					out = append(out, n.IP.String())
				}
			}
		}
	}
	return append(out, extra...)
}

package pki

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

func certOf(t *testing.T, d Dir, file string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(d.Path(file))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseCert(data)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEnsure(t *testing.T) {
	d := Dir(t.TempDir() + "/pki")
	if _, err := d.Ensure(Site{Name: "a"}, false, now); err == nil {
		t.Fatal("Ensure without a CA and without create succeeded")
	}
	created, err := d.Ensure(Site{Name: "a", Hosts: []string{"lab-a.example.org", "10.0.0.5"}}, true, now)
	if err != nil || !created {
		t.Fatalf("first Ensure: %v, %v", created, err)
	}
	for _, f := range []string{CAKeyFile, ReadersCAKeyFile, SiteKeyFile, RootKeyFile} {
		if st, err := os.Stat(d.Path(f)); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v, want mode 0600", f, st.Mode(), err)
		}
	}
	if st, _ := os.Stat(string(d)); st.Mode().Perm() != 0o700 {
		t.Fatalf("pki directory mode %v", st.Mode())
	}
	ca, err := d.CA()
	if err != nil {
		t.Fatal(err)
	}
	site := certOf(t, d, SiteCertFile)
	for _, h := range []string{"lab-a.example.org", "10.0.0.5", "127.0.0.1", "localhost", "::1"} {
		if err := site.VerifyHostname(h); err != nil {
			t.Errorf("site certificate: %v", err)
		}
	}
	if site.Subject.CommonName != "site:a" || site.CheckSignatureFrom(ca.Cert) != nil {
		t.Fatalf("site certificate %s", site.Subject)
	}
	root := certOf(t, d, RootCertFile)
	if root.Subject.CommonName != RootName || len(root.ExtKeyUsage) != 1 || root.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Fatalf("root certificate %s %v", root.Subject, root.ExtKeyUsage)
	}

	steps := []struct {
		name    string
		site    Site
		at      time.Time
		renewed bool
	}{
		{"unchanged", Site{Name: "a", Hosts: []string{"lab-a.example.org"}}, now.Add(time.Hour), false},
		{"a new host", Site{Name: "a", Hosts: []string{"lab-a.example.org", "10.0.0.6"}}, now.Add(time.Hour), true},
		{"a month before expiry", Site{Name: "a", Hosts: []string{"10.0.0.6"}}, now.Add(certValidity - 29*24*time.Hour), true},
	}
	for _, st := range steps {
		before := certOf(t, d, SiteCertFile).SerialNumber
		if created, err := d.Ensure(st.site, true, st.at); err != nil || created {
			t.Fatalf("%s: %v, created %v", st.name, err, created)
		}
		if renewed := certOf(t, d, SiteCertFile).SerialNumber.Cmp(before) != 0; renewed != st.renewed {
			t.Errorf("%s: renewed %v, want %v", st.name, renewed, st.renewed)
		}
		if again, _ := d.CA(); Fingerprint(again.Cert) != ca.Fingerprint() {
			t.Fatalf("%s: the CA changed", st.name)
		}
	}
}

func TestJoinToken(t *testing.T) {
	ca, _, err := NewCA("a", now, "test CA")
	if err != nil {
		t.Fatal(err)
	}
	tok := NewJoinToken("https://127.0.0.1:8443", ca)
	got, err := ParseJoinToken(" " + tok.String() + "\n")
	if err != nil || got != tok {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	if !SecretMatches(tok.Secret, SecretHash(tok.Secret)) || SecretMatches(tok.Secret+"0", SecretHash(tok.Secret)) {
		t.Fatal("SecretMatches")
	}
	bad := []struct{ name, token, want string }{
		{"not a token", "hello", "not a join token"},
		{"damaged", tok.String()[:20] + "!" + tok.String()[21:], "damaged"},
		{"truncated", tok.String()[:len(tok.String())-4], "damaged"},
		{"plain http", JoinToken{Addr: "http://127.0.0.1:1", ID: tok.ID, Secret: tok.Secret, CAFingerprint: tok.CAFingerprint}.String(), "https"},
		{"a path", JoinToken{Addr: "https://127.0.0.1:1/x", ID: tok.ID, Secret: tok.Secret, CAFingerprint: tok.CAFingerprint}.String(), "https"},
		{"short secret", JoinToken{Addr: tok.Addr, ID: tok.ID, Secret: "ab", CAFingerprint: tok.CAFingerprint}.String(), "damaged"},
	}
	for _, b := range bad {
		if _, err := ParseJoinToken(b.token); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s: %v, want an error about %q", b.name, err, b.want)
		}
	}
}

// federation returns a PKI directory with a CA and a site's certificates.
func federation(t *testing.T, site string) Dir {
	t.Helper()
	d := Dir(t.TempDir())
	if _, err := d.Ensure(Site{Name: site}, true, time.Now()); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestTLS checks the three TLS configurations against a real server:
// mutual TLS between sites of one CA, a certificate of another CA refused,
// and a joining site's pin on the CA's fingerprint.
func TestTLS(t *testing.T) {
	a, other := federation(t, "a"), federation(t, "x")
	serverTLS, err := a.ServerTLS()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := "anonymous"
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			name = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		io.WriteString(w, name)
	}))
	srv.TLS = serverTLS
	srv.StartTLS()
	defer srv.Close()
	ca, _ := a.CA()
	otherCA, _ := other.CA()
	if ca.Fingerprint() == otherCA.Fingerprint() {
		t.Fatal("two federations share a CA")
	}

	get := func(cfg *tls.Config) (string, error) {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
		resp, err := c.Get(srv.URL)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	site, err := a.ClientTLS(SiteCertFile, SiteKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	// A client that trusts the federation but presents another CA's
	// certificate.
	foreign, _ := other.ClientTLS(SiteCertFile, SiteKeyFile)
	foreign.RootCAs = ca.Pool()
	var pinned *x509.Certificate
	tests := []struct {
		name    string
		cfg     *tls.Config
		want    string // the name the server saw; "" when the handshake must fail
		errPart string
	}{
		{"a site of the federation", site, "site:a", ""},
		// Its certificate is not among those the server asks for: it is
		// anonymous, never another federation's site.
		{"a site of another federation", foreign, "anonymous", ""},
		{"a joining site pinning the right CA", PinnedTLS(ca.Fingerprint(), &pinned), "anonymous", ""},
		{"a joining site pinning another CA", PinnedTLS(otherCA.Fingerprint(), nil), "", "not the federation"},
		{"a client trusting the system roots", &tls.Config{}, "", "certificate"},
	}
	for _, tc := range tests {
		got, err := get(tc.cfg)
		switch {
		case tc.want != "" && (err != nil || got != tc.want):
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		case tc.want == "" && (err == nil || !strings.Contains(err.Error(), tc.errPart)):
			t.Errorf("%s: %q, %v; want an error about %q", tc.name, got, err, tc.errPart)
		}
	}
	if pinned == nil || Fingerprint(pinned) != ca.Fingerprint() {
		t.Error("PinnedTLS did not hand back the CA it checked")
	}
}

package etcdembed

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/orchestrator/pki"
)

func TestStartOnFreePorts(t *testing.T) {
	ctx := context.Background()
	s, err := Start(ctx, Options{Dir: t.TempDir(), ClientURL: "http://127.0.0.1:0", PeerURL: "http://127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := clientv3.New(clientv3.Config{Endpoints: s.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Put(ctx, "/k", "v"); err != nil {
		t.Fatal(err)
	}
	r, err := c.Get(ctx, "/k")
	if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "v" {
		t.Fatalf("get: %v %v", r, err)
	}
}

func TestStartRejects(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"bad client URL", Options{ClientURL: "::"}, "not a URL"},
		{"unknown cluster state", Options{ClusterState: "join"}, `cluster state "join"`},
		{"joining without the initial cluster", Options{ClusterState: "existing"}, "needs the initial cluster"},
		{"free peer port in a cluster", Options{
			Name: "b", PeerURL: "http://127.0.0.1:0",
			InitialCluster: "a=http://127.0.0.1:2380,b=http://127.0.0.1:0", ClusterState: "existing",
		}, "port 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.Dir = t.TempDir()
			_, err := Start(context.Background(), tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// tlsMember starts a member that serves mutual TLS with certificates of a
// new federation, and returns it and the federation's PKI directory.
func tlsMember(t *testing.T, gateway bool) (*Server, pki.Dir) {
	t.Helper()
	d := pki.Dir(t.TempDir())
	if _, err := d.Ensure(pki.Site{Name: "a"}, true, time.Now()); err != nil {
		t.Fatal(err)
	}
	s, err := Start(context.Background(), Options{Dir: t.TempDir(), ClientURL: "https://127.0.0.1:0", PeerURL: "https://127.0.0.1:0",
		Gateway: gateway, TLS: &TLS{CertFile: d.Path(pki.SiteCertFile), KeyFile: d.Path(pki.SiteKeyFile),
			ClientCAFile: d.Path(pki.ClientsCAFile), PeerCAFile: d.Path(pki.CACertFile)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, d
}

// TestTLSRefusesStrangers checks that a member serving TLS answers only
// clients with a certificate of the federation: not a plaintext client,
// not one without a certificate, not one of another federation.
func TestTLSRefusesStrangers(t *testing.T) {
	s, d := tlsMember(t, false)
	endpoint := s.Endpoints()[0]
	if !strings.HasPrefix(endpoint, "https://") {
		t.Fatalf("endpoint %s", endpoint)
	}
	other := pki.Dir(t.TempDir())
	if _, err := other.Ensure(pki.Site{Name: "x"}, true, time.Now()); err != nil {
		t.Fatal(err)
	}
	site, err := d.ClientTLS(pki.SiteCertFile, pki.SiteKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	noCert, _ := d.ClientTLS(pki.SiteCertFile, pki.SiteKeyFile)
	noCert.Certificates = nil
	foreign, _ := other.ClientTLS(pki.SiteCertFile, pki.SiteKeyFile)
	foreign.RootCAs = site.RootCAs // it trusts the member, but is not trusted
	tests := []struct {
		name     string
		endpoint string
		tls      *tls.Config
		ok       bool
	}{
		{"a site of the federation", endpoint, site, true},
		{"plaintext", strings.Replace(endpoint, "https://", "http://", 1), nil, false},
		{"TLS without a certificate", endpoint, noCert, false},
		{"a certificate of another federation", endpoint, foreign, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := clientv3.New(clientv3.Config{Endpoints: []string{tc.endpoint}, TLS: tc.tls, DialTimeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			_, err = c.Put(ctx, "/mao/k", tc.name)
			if (err == nil) != tc.ok {
				t.Fatalf("put: %v, want ok %v", err, tc.ok)
			}
		})
	}
}

// TestNoDriveByWrites replays a web page's attack on the embedded member:
// a browser-style POST to etcd's JSON gateway (text/plain, so no CORS
// preflight, from a foreign Origin). It must not write, whether the page
// speaks plaintext or TLS, and whether a site turned the gateway on.
func TestNoDriveByWrites(t *testing.T) {
	for _, gateway := range []bool{false, true} {
		t.Run(fmt.Sprintf("gateway %v", gateway), func(t *testing.T) {
			s, d := tlsMember(t, gateway)
			endpoint := s.Endpoints()[0]
			body := `{"key":"L21hby90b29scy94","value":"eyJuZXR3b3JrIjoiaG9zdCJ9"}` // /mao/tools/x, {"network":"host"}
			browser := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
			for _, u := range []string{endpoint, strings.Replace(endpoint, "https://", "http://", 1)} {
				req, _ := http.NewRequest(http.MethodPost, u+"/v3/kv/put", strings.NewReader(body))
				req.Header.Set("Content-Type", "text/plain")
				req.Header.Set("Origin", "https://evil.example")
				resp, err := browser.Do(req)
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						t.Errorf("POST %s/v3/kv/put answered 200", u)
					}
				}
			}
			site, _ := d.ClientTLS(pki.SiteCertFile, pki.SiteKeyFile)
			c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, TLS: site, DialTimeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			r, err := c.Get(context.Background(), "/mao/tools/x")
			if err != nil || len(r.Kvs) != 0 {
				t.Fatalf("the page's key: %v, %v", r, err)
			}
		})
	}
}

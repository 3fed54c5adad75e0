package fedtest

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/testenv"
	"github.com/mao-research/mao/orchestrator/pki"
)

// TestSecureFederation runs three sites on embedded etcd members: s1
// founds the federation, s2 and s3 join it only through join tokens, and
// every etcd connection (client and peer) and every site-to-site call is
// mutual TLS with the federation's certificates. It checks that:
//   - the three members are healthy voters, and a tool registered at s1
//     runs at s3 when asked at s2, which follows its log (read from s3 as
//     site s2, not with the user's token);
//   - etcd refuses a plaintext client, a TLS client without a
//     certificate, and one with another federation's certificate;
//   - a collaborator's read-only credentials (maoctl federation
//     credentials --read-only) can get the federation's keys but not put;
//   - a join token works once.
func TestSecureFederation(t *testing.T) {
	bins, image := Build(t), testenv.BuildTestImage(t)
	fed := StartSecure(t, bins, leaseTTL, "s1", "s2", "s3")
	s1, s2, s3 := fed.Sites[0], fed.Sites[1], fed.Sites[2]
	s1Client, usedConfig := fed.Endpoint, fed.JoinConfig
	ctx := context.Background()

	t.Run("a token works once", func(t *testing.T) {
		log := StartFails(t, bins, usedConfig)
		if !strings.Contains(log, "join token is not valid") {
			t.Fatalf("a second site with s3's token:\n%s", log)
		}
	})

	t.Run("no token for a name the federation knows", func(t *testing.T) {
		for _, name := range []string{"s1", "s2"} {
			_, err := s1.Client.AddSite(ctx, api.AddSiteRequest{Name: name, PeerURL: "https://" + testenv.ClosedPort(t)})
			var apiErr *api.Error
			if !errors.As(err, &apiErr) || apiErr.Status != http.StatusConflict {
				t.Errorf("add-site %s at s1: %v, want 409", name, err)
			}
		}
	})

	t.Run("a site without a member of its own joins, and remove-site takes its access away", func(t *testing.T) {
		printed := bins.Ctl(t, s2.Addr, "federation", "add-site", "s4")
		config := strings.Replace(printed, "[site]\n", "[site]\ndata_dir = %DIR%\nlease_ttl = "+leaseTTL.String()+"\n", 1) +
			"\n[api]\nlisten = 127.0.0.1:0\n"
		s4 := Start(t, bins, "s4", config)
		if _, err := s4.Client.RegisterDataset(ctx, api.Dataset{Name: "from-s4", URL: testenv.GitRepo(t, nil)}); err != nil {
			t.Fatalf("s4 writes through the federation's etcd: %v", err)
		}
		Eventually(t, 30*time.Second, "s1 sees s4 live", func() bool {
			sites, err := s1.Client.Sites(ctx)
			return err == nil && slices.ContainsFunc(sites.Items, func(s api.SiteInfo) bool { return s.Name == "s4" && s.Live })
		})
		s4.Stop()
		Eventually(t, 30*time.Second, "s4 gone", func() bool {
			return s1.Client.RemoveSite(ctx, "s4") == nil
		})
		cfg, err := pki.Dir(filepath.Join(s4.Dir, "pki")).ClientTLS(pki.SiteCertFile, pki.SiteKeyFile)
		if err != nil {
			t.Fatal(err)
		}
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{s1Client}, TLS: cfg, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if _, err := c.Get(gctx, "/mao/tools/", clientv3.WithPrefix()); err == nil {
			t.Fatal("the removed site's certificate still reads etcd")
		}
	})

	t.Run("registered at s1, run at s3, asked and followed at s2", func(t *testing.T) {
		tool := api.Tool{Name: "hello", Author: "fedtest", Image: image, DataRepo: testenv.GitRepo(t, nil), Network: "none", Command: []string{"-lines", "2"}}
		if _, err := s1.Client.RegisterTool(ctx, tool); err != nil {
			t.Fatal(err)
		}
		started, err := s2.Client.RunTool(ctx, "hello", api.RunRequest{Target: &api.Target{Mode: "site", Site: "s3"}})
		if err != nil {
			t.Fatal(err)
		}
		AwaitOutput(t, s2.Client, started[0].ID, "line 2")
		Eventually(t, 60*time.Second, "the run at s3 succeeded", func() bool {
			r, err := s3.Client.Run(ctx, started[0].ID)
			return err == nil && r.State == api.StateSucceeded && r.Site == "s3"
		})
		infos, err := s2.Client.Sites(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, info := range infos.Items {
			if !strings.HasPrefix(info.FederationAddr, "https://") {
				t.Errorf("site %s publishes federation address %q", info.Name, info.FederationAddr)
			}
		}
	})

	// put tries a write to s1's member as the given client.
	put := func(endpoint string, cfg *tls.Config) error {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, TLS: cfg, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			return err
		}
		defer c.Close()
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		_, err = c.Put(pctx, "/mao/tools/intruder", `{"name":"intruder","network":"host"}`)
		return err
	}
	t.Run("etcd admits only the federation's certificates", func(t *testing.T) {
		other := pki.Dir(t.TempDir())
		if _, err := other.Ensure(pki.Site{Name: "x"}, true, time.Now()); err != nil {
			t.Fatal(err)
		}
		ours := pki.Dir(filepath.Join(s1.Dir, "pki"))
		foreign, err := other.ClientTLS(pki.SiteCertFile, pki.SiteKeyFile)
		if err != nil {
			t.Fatal(err)
		}
		site, err := ours.ClientTLS(pki.SiteCertFile, pki.SiteKeyFile)
		if err != nil {
			t.Fatal(err)
		}
		foreign.RootCAs = site.RootCAs // it trusts the member; the member must not trust it
		noCert := site.Clone()
		noCert.Certificates = nil
		for _, tc := range []struct {
			name     string
			endpoint string
			cfg      *tls.Config
		}{
			{"plaintext", strings.Replace(s1Client, "https://", "http://", 1), nil},
			{"TLS without a certificate", s1Client, noCert},
			{"another federation's certificate", s1Client, foreign},
		} {
			if err := put(tc.endpoint, tc.cfg); err == nil {
				t.Errorf("%s: a write went through", tc.name)
			}
		}
		if r, err := s2.Client.Tool(ctx, "intruder"); err == nil {
			t.Fatalf("the intruder's tool is registered: %+v", r)
		}
	})

	t.Run("a collaborator reads but cannot write", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "creds")
		printed := bins.Ctl(t, s2.Addr, "federation", "credentials", "ada", "--read-only", "--out", out)
		if !strings.Contains(printed, "etcdctl --endpoints=") || !strings.Contains(printed, "--cert="+filepath.Join(out, "ada.crt")) {
			t.Fatalf("credentials printed:\n%s", printed)
		}
		for _, f := range []string{"ca.crt", "ada.crt", "ada.key"} {
			if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Mode().Perm() != 0o600 {
				t.Fatalf("%s: %v %v", f, st, err)
			}
		}
		info := transport.TLSInfo{CertFile: filepath.Join(out, "ada.crt"), KeyFile: filepath.Join(out, "ada.key"),
			TrustedCAFile: filepath.Join(out, "ca.crt")}
		cfg, err := info.ClientConfig()
		if err != nil {
			t.Fatal(err)
		}
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{s1Client}, TLS: cfg, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		r, err := c.Get(ctx, "/mao/tools/", clientv3.WithPrefix())
		if err != nil || len(r.Kvs) == 0 {
			t.Fatalf("get the tools as a collaborator: %v, %v", r, err)
		}
		if _, err := c.Put(ctx, "/mao/tools/x", "{}"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
			t.Fatalf("put as a collaborator: %v, want permission denied", err)
		}
		if _, err := c.Get(ctx, "/other/"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
			t.Fatalf("get outside the prefix as a collaborator: %v, want permission denied", err)
		}
	})
}

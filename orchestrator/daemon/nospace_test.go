package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/testenv"
	"github.com/mao-research/mao/orchestrator/pki"
)

// TestNoSpaceRecovers fills a site's embedded etcd member (a 16 MiB
// quota) until etcd raises NOSPACE, and checks that health says degraded
// and why, that federation status lists the alarm, and that one message
// reaches a real webhook; then frees the space by deleting the filler and
// checks that the site recovers by itself (compaction, defragmentation,
// the alarm disarmed): writes work, health is ok, and no second message
// went out.
func TestNoSpaceRecovers(t *testing.T) {
	hookURL, hook := webhook(t)
	cfg := testenv.SiteConfig(t, "full", nil)
	cfg.Etcd.ClientURL = "https://" + strings.TrimPrefix(testenv.FreeURL(t), "http://")
	cfg.Etcd.QuotaBytes, cfg.Etcd.MaintenanceInterval = 16<<20, time.Second
	cfg.Notify.URLs = []string{hookURL}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s := startSite(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tlsCfg, err := pki.Dir(filepath.Join(cfg.Site.DataDir, "pki")).ClientTLS(pki.RootCertFile, pki.RootKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	root, err := clientv3.New(clientv3.Config{Endpoints: []string{cfg.Etcd.ClientURL}, TLS: tlsCfg, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if h, err := s.client.Health(ctx); err != nil || h.Status != "ok" {
		t.Fatalf("health before: %+v, %v", h, err)
	}

	// The filler must hold the database past the share of the quota at
	// which the site disarms the alarm (75%) even after the site compacts
	// and defragments, or the site rightly recovers while it is still
	// there. Puts that interleave with the site's own writes leave the
	// database fragmented, so the test defragments as it fills.
	filler := strings.Repeat("x", 256<<10)
	for i := 0; ; i++ {
		_, err := root.Put(ctx, fmt.Sprintf("/filler/%03d", i), filler)
		if errors.Is(err, rpctypes.ErrNoSpace) {
			break
		}
		if err != nil || i > 200 {
			t.Fatalf("put %d: %v; want NOSPACE within 200 puts of 256 KiB", i, err)
		}
		if i%8 == 7 {
			if _, err := root.Defragment(ctx, cfg.Etcd.ClientURL); err != nil {
				t.Fatalf("defragment while filling: %v", err)
			}
		}
	}
	if st, err := root.Status(ctx, cfg.Etcd.ClientURL); err != nil || st.DbSizeInUse*100 < cfg.Etcd.QuotaBytes*80 {
		t.Fatalf("at NOSPACE: %+v, %v; want at least 80%% of the quota in use", st, err)
	}
	full := time.Now()
	health := awaitHealth(ctx, t, s, "degraded")
	degraded := time.Since(full)
	if !strings.Contains(health.Etcd, "NOSPACE") {
		t.Errorf("degraded health's etcd: %q; want it to say NOSPACE", health.Etcd)
	}
	if m := recv(t, hook); !strings.Contains(m["title"], "out of space") || !strings.Contains(m["message"], "NOSPACE") {
		t.Fatalf("webhook message: %+v", m)
	}
	notified := time.Since(full)
	// A write through mao meanwhile says why it cannot be done (507),
	// not "internal error".
	var apiErr *api.Error
	_, err = s.client.RegisterTool(ctx, api.Tool{Name: "during", Author: "t", Image: "busybox", Network: "none",
		DataRepo: testenv.GitRepo(t, nil)})
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusInsufficientStorage || apiErr.Code != api.CodeFull ||
		!strings.Contains(apiErr.Message, "NOSPACE") {
		t.Errorf("a write through mao under NOSPACE: %v; want 507, code full, saying NOSPACE", err)
	}
	fed, err := s.client.Federation(ctx)
	if err != nil || len(fed.Members) != 1 || !strings.Contains(strings.Join(fed.Members[0].Alarms, ","), "NOSPACE") {
		t.Fatalf("federation status: %+v, %v; want the NOSPACE alarm", fed, err)
	}

	if _, err := root.Delete(ctx, "/filler/", clientv3.WithPrefix()); err != nil {
		t.Fatalf("delete the filler under NOSPACE: %v", err)
	}
	freed := time.Now()
	awaitHealth(ctx, t, s, "ok")
	// The figures of make bench's NOSPACE step (maintenance_interval 1s).
	t.Logf("nospace: health degraded %s and notified %s after the write that hit the quota; healthy again %s after the space was freed",
		degraded.Round(time.Millisecond), notified.Round(time.Millisecond), time.Since(freed).Round(time.Millisecond))
	if alarms, err := root.AlarmList(ctx); err != nil || len(alarms.Alarms) != 0 {
		t.Fatalf("alarms after recovery: %+v, %v", alarms, err)
	}
	if _, err := s.client.RegisterTool(ctx, api.Tool{Name: "after", Author: "t", Image: "busybox", Network: "none",
		DataRepo: testenv.GitRepo(t, nil)}); err != nil {
		t.Fatalf("a write through mao after recovery: %v", err)
	}
	select {
	case m := <-hook:
		t.Fatalf("a second message: %+v", m)
	default:
	}
}

// awaitHealth polls the site's health until its status is want.
func awaitHealth(ctx context.Context, t *testing.T, s *site, want string) api.Health {
	t.Helper()
	var h api.Health
	var err error
	for ctx.Err() == nil {
		if h, err = s.client.Health(ctx); err == nil && h.Status == want {
			return h
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("health did not become %s: last %+v, %v", want, h, err)
	return h
}

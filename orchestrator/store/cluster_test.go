package store

import (
	"context"
	"testing"
	"time"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/testenv"
)

func TestExperimentAddRemove(t *testing.T) {
	c := testenv.EtcdClient(t)
	s := New(c, "/mao/", 3*time.Second)
	ctx := context.Background()
	res, err := s.AddSite(ctx, api.AddSiteRequest{Name: "b", PeerURL: testenv.FreeURL(t)})
	t.Logf("add: %+v %v", res, err)
	f, err := s.Federation(ctx)
	t.Logf("fed: %+v %v", f, err)
	t0 := time.Now()
	err = s.RemoveSite(ctx, "b")
	t.Logf("remove by name: %v (%v)", err, time.Since(t0))
	resp, err := c.MemberList(ctx)
	for _, m := range resp.Members {
		t.Logf("member %x %q %v", m.ID, m.Name, m.PeerURLs)
		if m.Name == "" {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			t0 = time.Now()
			_, err := c.MemberRemove(rctx, m.ID)
			cancel()
			t.Logf("raw remove: %v (%v)", err, time.Since(t0))
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_, err = c.Put(wctx, "/x", "y")
	t.Logf("put after: %v", err)
}

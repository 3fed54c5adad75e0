package daemon

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/testenv"
)

// TestListsReadYourWrites checks the promise of the lists the registry's
// copy answers: a list asked for at one site holds every change made
// before it at another, however soon after the change it is asked for.
func TestListsReadYourWrites(t *testing.T) {
	endpoints := testenv.Etcd(t)
	a := startSite(t, testenv.SiteConfig(t, "site-a", endpoints))
	b := startSite(t, testenv.SiteConfig(t, "site-b", endpoints))
	ctx := context.Background()
	repo := testenv.GitRepo(t, nil)
	names := func(s *site) ([]string, []string) {
		t.Helper()
		tools, err := s.client.Tools(ctx)
		if err != nil {
			t.Fatal(err)
		}
		datasets, err := s.client.Datasets(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var tn, dn []string
		for _, x := range tools.Items {
			tn = append(tn, x.Name)
		}
		for _, x := range datasets.Items {
			dn = append(dn, x.Name)
		}
		return tn, dn
	}
	for i := range 10 {
		writer, reader := a, b
		if i%2 == 1 {
			writer, reader = b, a
		}
		name := fmt.Sprintf("t%02d", i)
		steps := []struct {
			what      string
			change    func() error
			tool, set bool // the tool and dataset listed after the change
		}{
			{"registered", func() error {
				if _, err := writer.client.RegisterDataset(ctx, api.Dataset{Name: name, URL: repo}); err != nil {
					return err
				}
				_, err := writer.client.RegisterTool(ctx, tool(name, "busybox:latest", repo))
				return err
			}, true, true},
			{"removed", func() error {
				if err := writer.client.RemoveTool(ctx, name); err != nil {
					return err
				}
				return writer.client.RemoveDataset(ctx, name)
			}, false, false},
		}
		for _, s := range steps {
			if err := s.change(); err != nil {
				t.Fatalf("%s %s at %s: %v", name, s.what, writer.cfg.Site.Name, err)
			}
			tools, datasets := names(reader)
			if slices.Contains(tools, name) != s.tool || slices.Contains(datasets, name) != s.set {
				t.Errorf("%s %s at %s: %s lists tools %v, datasets %v", name, s.what, writer.cfg.Site.Name, reader.cfg.Site.Name, tools, datasets)
			}
		}
	}
}

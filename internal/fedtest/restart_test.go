package fedtest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mao-research/mao/internal/testenv"
)

// embeddedFreePorts is an [etcd] section for a site on its own embedded
// member, on free ports: the default config but for the ports.
const embeddedFreePorts = "\n[etcd]\nclient_url = https://127.0.0.1:0\npeer_url = https://127.0.0.1:0\n"

// TestRestartAfterKill checks the promise that a site on the default
// embedded etcd that crashed (SIGKILL) starts again at once, with no
// config edit, ten times in a row: each life knows its previous life's
// record (whose lease the member's restart has just extended) by its
// instance, revokes that lease and becomes ready without waiting for the
// lease to expire. It logs each start's times, beyond etcd's own start.
func TestRestartAfterKill(t *testing.T) {
	const ttl, restarts = 10 * time.Second, 10 // the default lease
	bins := Build(t)
	s := Start(t, bins, "crashy", SiteConfig("crashy", "%DIR%", "", ttl, embeddedFreePorts))
	s.AwaitStart()
	ctx := context.Background()
	var worst time.Duration
	for i := range restarts {
		s.Kill()
		s.Restart()
		st := s.AwaitStart()
		t.Logf("restart %d: ready %s after the process started, etcd started after %s: %s beyond etcd",
			i+1, st.Ready.Round(time.Millisecond), st.Etcd.Round(time.Millisecond), st.Beyond().Round(time.Millisecond))
		if st.Waited || !st.Revoked || st.Beyond() >= ttl {
			t.Fatalf("restart %d: waited %v, revoked %v, %s beyond etcd's start; want no wait for the old lease",
				i+1, st.Waited, st.Revoked, st.Beyond())
		}
		worst = max(worst, st.Beyond())
		list, err := s.Client.Sites(ctx)
		if infos := list.Items; err != nil || len(infos) != 1 || !infos[0].Live || infos[0].APIAddr != s.Addr || infos[0].Instance == "" {
			t.Fatalf("restart %d: sites %+v, %v", i+1, list, err)
		}
	}
	t.Logf("worst start beyond etcd's over %d restarts: %s", restarts, worst.Round(time.Millisecond))
}

// TestSecondOrchestratorRefused checks that the name stays unique: an
// orchestrator of another data directory (another instance) with a live
// site's name is refused at start-up, and one on a data directory that
// an orchestrator uses already is refused at once.
func TestSecondOrchestratorRefused(t *testing.T) {
	bins := Build(t)
	cluster := testenv.EtcdCluster(t, 1)
	etcd := fmt.Sprintf("\n[etcd]\nendpoints = %s\n", strings.Join(cluster.Endpoints(), ", "))
	first := Start(t, bins, "taken", SiteConfig("taken", "%DIR%", "", 2*time.Second, etcd))
	out := StartFails(t, bins, SiteConfig("taken", "%DIR%", "", 2*time.Second, etcd))
	if !strings.Contains(out, `site name \"taken\" is in use by a live orchestrator`) {
		t.Fatalf("a second orchestrator named taken:\n%s", out)
	}
	out = StartFails(t, bins, SiteConfig("other", first.Dir, "", 2*time.Second, etcd))
	if !strings.Contains(out, "another orchestrator runs with the data directory") {
		t.Fatalf("a second orchestrator on the same data directory:\n%s", out)
	}
}

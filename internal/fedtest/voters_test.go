package fedtest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/testenv"
)

// labTool registers, at s, a tool of the test image that prints two lines.
func labTool(t *testing.T, s *Site, image string) {
	t.Helper()
	tool := api.Tool{Name: "hello", Author: "fedtest", Image: image, DataRepo: testenv.GitRepo(t, nil), Network: "none", Command: []string{"-lines", "2"}}
	if _, err := s.Client.RegisterTool(context.Background(), tool); err != nil {
		t.Fatal(err)
	}
}

// worksAlone checks that site s writes through the federation's etcd and
// runs: a dataset registered at s (retried while etcd elects a leader,
// right after a member stopped) and a run of the tool at s that succeeds.
func worksAlone(t *testing.T, s *Site, dataset string) {
	t.Helper()
	ctx := context.Background()
	began := time.Now()
	Eventually(t, 60*time.Second, "a write at "+s.Name, func() bool {
		_, err := s.Client.RegisterDataset(ctx, api.Dataset{Name: dataset, URL: testenv.GitRepo(t, nil)})
		return err == nil
	})
	t.Logf("%s: the first write (%s) went through after %s", s.Name, dataset, time.Since(began).Round(time.Millisecond))
	var run api.Run
	Eventually(t, 30*time.Second, "a run asked at "+s.Name, func() bool {
		runs, err := s.Client.RunTool(ctx, "hello", api.RunRequest{})
		if err == nil {
			run = runs[0]
		}
		return err == nil
	})
	Eventually(t, 60*time.Second, "the run at "+s.Name+" succeeded", func() bool {
		r, err := s.Client.Run(ctx, run.ID)
		return err == nil && r.State == api.StateSucceeded && r.Site == s.Name
	})
}

// noQuorum waits until federation status at s says the federation has
// no leader, and exits 1.
func noQuorum(t *testing.T, bins Binaries, s *Site) {
	t.Helper()
	var last string
	defer func() {
		if t.Failed() {
			t.Logf("the last federation status at %s:\n%s", s.Name, last)
		}
	}()
	Eventually(t, 60*time.Second, s.Name+" without a quorum", func() bool {
		stdout, stderr, code := bins.CtlExit(t, s.Addr, "federation", "status")
		last = fmt.Sprintf("exit %d\n%s%s", code, stdout, stderr)
		return code == 1 && strings.Contains(stderr, "no leader")
	})
}

// member is the member named name, or nil.
func member(fed api.Federation, name string) *api.Member {
	for i := range fed.Members {
		if fed.Members[i].Name == name {
			return &fed.Members[i]
		}
	}
	return nil
}

// TestTwoLabsAndAWitness: two labs are one voter and a learner, so that
// the second lab's maintenance stops nobody; with a witness
// (orchestrator -witness, joined with a token like a site) they are three
// voters, and the federation keeps writing and running when either lab
// is down: lab-a stopped (SIGTERM), then, with lab-a back, lab-b crashed
// (SIGKILL). The witness is shown by federation status and is not a site:
// site list leaves it out, and it runs nothing.
func TestTwoLabsAndAWitness(t *testing.T) {
	bins, image := Build(t), testenv.BuildTestImage(t)
	fed := StartSecure(t, bins, leaseTTL, "lab-a", "lab-b")
	labA, labB := fed.Sites[0], fed.Sites[1]
	ctx := context.Background()
	status := fed.AwaitMembers(t, 2)
	if m := member(status, "lab-b"); m == nil || !m.Learner || status.Voters != 1 {
		t.Fatalf("two labs: %+v; want lab-b a learner, 1 voter", status)
	}
	witness := fed.AddWitness(t, "w")
	status = fed.AwaitMembers(t, 3)
	if m := member(status, "w"); m == nil || !m.Witness || m.Learner || len(status.Warnings) != 0 {
		t.Fatalf("with a witness: %+v; want w a voting witness, no warnings", status)
	}
	sites, err := labA.Client.Sites(ctx)
	if err != nil || slices.ContainsFunc(sites.Items, func(s api.SiteInfo) bool { return s.Name == "w" }) {
		t.Fatalf("site list: %+v, %v; want no witness in it", sites, err)
	}
	labTool(t, labA, image)

	labA.Stop()
	worksAlone(t, labB, "while-a-is-down")
	out, _, code := bins.CtlExit(t, labB.Addr, "federation", "status")
	if code != 0 || !strings.Contains(out, "voter (witness)") {
		t.Fatalf("federation status at lab-b, lab-a down: exit %d\n%s", code, out)
	}
	labA.Restart()
	fed.AwaitMembers(t, 3)

	labB.Kill()
	worksAlone(t, labA, "while-b-is-down")
	_ = witness
}

// TestLeaveKeepsTheClusterHealthy: a voter that leaves (maoctl federation
// leave, asked at the site) first hands its vote to a learner, so the
// federation keeps three healthy voters, and the site exits 0 with its
// member, record and etcd user gone; a witness that leaves afterwards
// (orchestrator -leave while it is stopped) leaves two voters, which
// still write, and federation status warns of the even number.
func TestLeaveKeepsTheClusterHealthy(t *testing.T) {
	bins, image := Build(t), testenv.BuildTestImage(t)
	fed := StartSecure(t, bins, leaseTTL, "lab-a", "lab-b")
	witness := fed.AddWitness(t, "w")
	labA, labB := fed.Sites[0], fed.Sites[1]
	labC := fed.Join(t, "lab-c")
	status := fed.AwaitMembers(t, 4)
	if m := member(status, "lab-c"); m == nil || !m.Learner {
		t.Fatalf("a fourth site: %+v; want lab-c a learner", status)
	}
	labTool(t, labA, image)

	printed := bins.Ctl(t, labB.Addr, "federation", "leave", "lab-b")
	if !strings.Contains(printed, "hands its vote to lab-c") {
		t.Fatalf("federation leave printed:\n%s", printed)
	}
	if code, err := labB.Exited(2 * time.Minute); err != nil || code != 0 {
		t.Fatalf("lab-b after leaving: exit %d, %v\n%s", code, err, labB.Log())
	}
	status = fed.AwaitMembers(t, 3)
	for _, name := range []string{"lab-a", "lab-c", "w"} {
		if m := member(status, name); m == nil || m.Learner {
			t.Fatalf("after lab-b left: %+v; want %s a voter", status, name)
		}
	}
	if member(status, "lab-b") != nil {
		t.Fatalf("lab-b's member is still there: %+v", status)
	}
	sites, err := labA.Client.Sites(context.Background())
	if err != nil || slices.ContainsFunc(sites.Items, func(s api.SiteInfo) bool { return s.Name == "lab-b" }) {
		t.Fatalf("site list after lab-b left: %+v, %v", sites, err)
	}
	worksAlone(t, labC, "at-c-after-b-left")

	witness.Stop()
	if out, code := witness.Run("-witness", "-leave"); code != 0 {
		t.Fatalf("orchestrator -witness -leave: exit %d\n%s", code, out)
	}
	Eventually(t, 60*time.Second, "two voters, and a warning of the even number", func() bool {
		f, err := labA.Client.Federation(context.Background())
		return err == nil && len(f.Members) == 2 && f.Voters == 2 && f.Leader != "" && member(f, "w") == nil &&
			slices.ContainsFunc(f.Warnings, func(w string) bool { return strings.Contains(w, "even number") })
	})
	worksAlone(t, labA, "at-a-after-w-left")
}

// TestForceNewClusterRecoversALoneSurvivor: when lab-b and the witness are
// gone for good, lab-a and lab-c (a learner) have no quorum: federation
// status exits 1 at either, and writes fail. lab-c cannot be forced into
// a cluster of its own (etcd would be left with no voter). lab-a, stopped
// and started once with -force-new-cluster, warns, is a cluster of itself
// alone with the federation's data, writes and runs again, and removes
// the others' records.
func TestForceNewClusterRecoversALoneSurvivor(t *testing.T) {
	bins, image := Build(t), testenv.BuildTestImage(t)
	fed := StartSecure(t, bins, leaseTTL, "lab-a", "lab-b")
	witness := fed.AddWitness(t, "w")
	labA, labB := fed.Sites[0], fed.Sites[1]
	labC := fed.Join(t, "lab-c") // a learner
	labTool(t, labA, image)

	labB.Kill()
	witness.Kill()
	noQuorum(t, bins, labA)
	noQuorum(t, bins, labC)
	if _, err := labA.Client.RegisterDataset(context.Background(), api.Dataset{Name: "no-quorum", URL: testenv.GitRepo(t, nil)}); err == nil {
		t.Fatal("a write went through without a quorum")
	}
	labA.Stop()
	labC.Stop()
	if out, code := labC.Run("-force-new-cluster"); code == 0 || !strings.Contains(out, "learner") {
		t.Fatalf("-force-new-cluster at lab-c, a learner: exit %d\n%s", code, out)
	}

	labA.Restart("-force-new-cluster")
	if _, err := labA.Await(time.Second, func(r Record) bool { return strings.Contains(r.Msg, "FORCING A NEW CLUSTER") }); err != nil {
		t.Fatalf("no warning in the log: %v\n%s", err, labA.Log())
	}
	status, err := labA.Client.Federation(context.Background())
	if err != nil || len(status.Members) != 1 || status.Voters != 1 || status.Leader != "lab-a" {
		t.Fatalf("after the forced start: %+v, %v", status, err)
	}
	if _, err := labA.Client.Tool(context.Background(), "hello"); err != nil {
		t.Fatalf("the tool registered before: %v", err)
	}
	worksAlone(t, labA, "after-recovery")
	for _, name := range []string{"lab-b", "w", "lab-c"} {
		Eventually(t, 30*time.Second, fmt.Sprintf("remove-site %s at lab-a", name), func() bool {
			_, _, code := bins.CtlExit(t, labA.Addr, "federation", "remove-site", name)
			return code == 0
		})
	}
	sites, err := labA.Client.Sites(context.Background())
	if err != nil || len(sites.Items) != 1 {
		t.Fatalf("site list after the removals: %+v, %v", sites, err)
	}
}

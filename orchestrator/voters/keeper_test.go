package voters

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/errs"
)

// fakeCluster is a cluster in memory, with etcd's rules that matter here:
// a promotion of a learner that has not caught up is refused, and the
// lock is held by one at a time. It yields between reading the members
// and answering, so that concurrent keepers interleave.
type fakeCluster struct {
	mu       sync.Mutex
	members  []api.Member
	behind   map[string]int // promotions of a learner refused before it has caught up
	held     string         // the lock's holder
	most     int            // the most voters there ever were
	promoted []string
	removed  []string
}

func newFake(ms []api.Member) *fakeCluster {
	f := &fakeCluster{members: ms, behind: map[string]int{}}
	f.most, _ = count(ms)
	return f
}

func (f *fakeCluster) Federation(context.Context) (api.Federation, error) {
	f.mu.Lock()
	ms := slices.Clone(f.members)
	f.mu.Unlock()
	runtime.Gosched()
	return api.Federation{Leader: ms[0].Name, Members: ms}, nil
}

func (f *fakeCluster) Members(ctx context.Context) (api.Federation, error) { return f.Federation(ctx) }

func (f *fakeCluster) PromoteMember(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.behind[id] > 0 {
		f.behind[id]--
		return errors.New("etcdserver: can only promote a learner member which is in sync with leader")
	}
	for i := range f.members {
		if f.members[i].ID == id {
			f.members[i].Learner = false
			f.promoted = append(f.promoted, id)
		}
	}
	if v, _ := count(f.members); v > f.most {
		f.most = v
	}
	return nil
}

func (f *fakeCluster) RemoveMember(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.members = slices.DeleteFunc(f.members, func(m api.Member) bool { return m.ID == id })
	f.removed = append(f.removed, id)
	return nil
}

func (f *fakeCluster) LockVoters(_ context.Context, holder string) (func(), error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.held != "" {
		return nil, fmt.Errorf("held by %s: %w", f.held, errs.ErrInUse)
	}
	f.held = holder
	return func() { f.mu.Lock(); f.held = ""; f.mu.Unlock() }, nil
}

func (f *fakeCluster) voters() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, _ := count(f.members)
	return v
}

// TestKeepersPromoteUnderTheLock: four learners that look at once, over and
// over, beside one voter, end with three voters and never had more: each
// promotion is decided under the lock with the members read again.
func TestKeepersPromoteUnderTheLock(t *testing.T) {
	f := newFake(members("a:v", "b:l", "c:l", "d:l", "e:l"))
	var wg sync.WaitGroup
	for _, self := range []string{"b", "c", "d", "e"} {
		k := NewKeeper(f, Options{Site: self, Self: self, Policy: Policy{Max: 3}})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				k.Check(context.Background())
			}
		}()
	}
	wg.Wait()
	if v := f.voters(); v != 3 || f.most != 3 {
		t.Fatalf("%d voters at the end, at most %d; want 3 and never more", v, f.most)
	}
}

// TestKeeperWaitsForCatchUp: a learner that etcd refuses to promote (not
// caught up) is promoted at a later check; a lone learner beside one voter
// is never promoted.
func TestKeeperWaitsForCatchUp(t *testing.T) {
	f := newFake(members("a:v", "b:l"))
	k := NewKeeper(f, Options{Site: "b", Self: "b", Policy: Policy{Max: 3}})
	k.Check(context.Background())
	if f.voters() != 1 {
		t.Fatal("the second lab promoted itself")
	}
	f.mu.Lock()
	f.members = append(f.members, members("w:lw")...)
	f.behind["b"] = 2
	f.mu.Unlock()
	for i := range 2 {
		k.Check(context.Background())
		if f.voters() != 1 {
			t.Fatalf("check %d: promoted before it caught up", i+1)
		}
	}
	k.Check(context.Background())
	if f.voters() != 2 || !slices.Equal(f.promoted, []string{"b"}) {
		t.Fatalf("promoted %v, %d voters; want b, 2", f.promoted, f.voters())
	}
}

// TestKeeperEndpoints: the site's client is pointed at the voters' client
// URLs, those on port 0 and learners' left out, once per change.
func TestKeeperEndpoints(t *testing.T) {
	ms := members("a:v", "b:l", "c:v", "d:v")
	ms[0].ClientURLs, ms[1].ClientURLs, ms[2].ClientURLs = []string{"https://a:2379"}, []string{"https://b:2379"}, []string{"https://c:2379", "https://c:0"}
	f := newFake(ms)
	var told [][]string
	k := NewKeeper(f, Options{Site: "b", Self: "b", Policy: Policy{Max: 3}, Endpoints: func(u []string) { told = append(told, u) }})
	k.Check(context.Background())
	k.Check(context.Background())
	if len(told) != 1 || !slices.Equal(told[0], []string{"https://a:2379", "https://c:2379"}) {
		t.Fatalf("endpoints told %q; want the voters' once", told)
	}
}

// TestKeeperRunStops: Run checks at once and at every tick of its clock,
// and returns when its context ends.
func TestKeeperRunStops(t *testing.T) {
	f := newFake(members("a:v", "b:l"))
	clock := clockwork.NewFakeClock()
	k := NewKeeper(f, Options{Site: "b", Self: "b", Policy: Policy{Max: 3}, Clock: clock, Interval: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); k.Run(ctx) }()
	if err := clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.members = append(f.members, members("w:lw")...)
	f.mu.Unlock()
	clock.Advance(time.Second)
	deadline := time.After(10 * time.Second)
	for f.voters() != 2 {
		select {
		case <-deadline:
			t.Fatal("no promotion after a tick")
		default:
			runtime.Gosched()
		}
	}
	cancel()
	<-done
}

// TestLeave: a leaving voter waits for the lock, promotes the learner the
// plan names, points the client at the other voters and removes its own
// member; the only voter with no learner up is refused and changes
// nothing.
func TestLeave(t *testing.T) {
	ms := members("a:v", "b:v", "w:vw", "c:l")
	for i := range ms {
		ms[i].ClientURLs = []string{"https://" + ms[i].Name + ":2379"}
	}
	f := newFake(ms)
	unlock, _ := f.LockVoters(context.Background(), "someone")
	clock := clockwork.NewFakeClock()
	var told []string
	k := NewKeeper(f, Options{Site: "b", Self: "b", Policy: Policy{Max: 3}, Clock: clock, Endpoints: func(u []string) { told = u }})
	type result struct {
		plan api.Voting
		err  error
	}
	done := make(chan result, 1)
	go func() { plan, err := k.Leave(context.Background()); done <- result{plan, err} }()
	if err := clock.BlockUntilContext(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if len(f.removed) != 0 {
		t.Fatal("left while another held the lock")
	}
	unlock()
	clock.Advance(time.Second)
	r := <-done
	if r.err != nil || r.plan.Promotes != "c" || r.plan.VotersAfter != 3 {
		t.Fatalf("Leave = %+v, %v", r.plan, r.err)
	}
	if !slices.Equal(f.promoted, []string{"c"}) || !slices.Equal(f.removed, []string{"b"}) || f.voters() != 3 || f.most != 4 {
		t.Fatalf("promoted %v, removed %v, %d voters (at most %d)", f.promoted, f.removed, f.voters(), f.most)
	}
	if !slices.Equal(told, []string{"https://a:2379", "https://c:2379", "https://w:2379"}) {
		t.Fatalf("endpoints before the removal: %q", told)
	}

	alone := newFake(members("a:v", "b:l-"))
	k = NewKeeper(alone, Options{Site: "a", Self: "a", Policy: Policy{Max: 3}})
	if _, err := k.Leave(context.Background()); !errors.Is(err, errs.ErrConflict) || len(alone.removed) != 0 || alone.held != "" {
		t.Fatalf("the only voter left: %v, removed %v, lock %q", err, alone.removed, alone.held)
	}
}

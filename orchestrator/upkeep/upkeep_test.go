package upkeep

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/mao-research/mao/notify"
	"github.com/mao-research/mao/orchestrator/store"
)

// fakeEtcd answers with space and alarms and records what it is asked to
// do; a defragmentation frees what is not in use. The logic under test is
// the keeper's decisions; TestNoSpaceRecovers in package daemon runs them
// against a real etcd.
type fakeEtcd struct {
	mu     sync.Mutex
	space  store.Space
	alarms []store.Alarm
	calls  []string
}

func (f *fakeEtcd) MemberSpace(context.Context, string) (store.Space, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.space, nil
}

func (f *fakeEtcd) EtcdAlarms(context.Context) ([]store.Alarm, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.alarms, nil
}

func (f *fakeEtcd) Compact(_ context.Context, rev int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("compact %d", rev))
	return nil
}

func (f *fakeEtcd) Defragment(context.Context, string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "defragment")
	f.space.Size = f.space.InUse
	return nil
}

func (f *fakeEtcd) DisarmNoSpace(_ context.Context, member uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("disarm %d", member))
	f.alarms = nil
	return nil
}

type fakeLease struct{ left time.Duration }

func (f fakeLease) Renew(context.Context) error { return nil }
func (f fakeLease) Remaining() time.Duration    { return f.left }
func (f fakeLease) TTL() time.Duration          { return f.left }

type fakeNotifier struct {
	mu     sync.Mutex
	events []notify.Event
}

func (f *fakeNotifier) Notify(e notify.Event, _ []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, e)
}

// TestKeeperDecides checks when the keeper defragments the site's own
// member (enough of it free, and only if the estimate fits a third of the
// lease's remaining validity), and how it gets out of NOSPACE (compact,
// defragment, disarm once there is room; one notification for the alarm,
// however many checks see it).
func TestKeeperDecides(t *testing.T) {
	const mib = 1 << 20
	noSpace := []store.Alarm{{Member: 7, Kind: store.AlarmNoSpace}}
	tests := []struct {
		name      string
		space     store.Space
		alarms    []store.Alarm
		lease     time.Duration
		endpoint  string
		want      []string
		wantTells int
	}{
		{"little free", store.Space{Member: 7, Size: 100 * mib, InUse: 80 * mib}, nil, time.Hour, "e", nil, 0},
		{"half free", store.Space{Member: 7, Size: 100 * mib, InUse: 50 * mib}, nil, time.Hour, "e", []string{"defragment"}, 0},
		{"half free but too small to bother", store.Space{Member: 7, Size: 20 * mib, InUse: 10 * mib}, nil, time.Hour, "e", nil, 0},
		// 50 MiB at the assumed 32 MiB/s is 1.6 s, more than a third of 3 s.
		{"the lease too short for it", store.Space{Member: 7, Size: 100 * mib, InUse: 50 * mib}, nil, 3 * time.Second, "e", nil, 0},
		{"NOSPACE, room after defragmenting", store.Space{Member: 7, Revision: 42, Size: 100 * mib, InUse: 10 * mib, Quota: 100 * mib},
			noSpace, time.Hour, "e", []string{"compact 42", "defragment", "disarm 7"}, 1},
		{"NOSPACE, still full", store.Space{Member: 7, Revision: 42, Size: 100 * mib, InUse: 90 * mib, Quota: 100 * mib},
			noSpace, time.Hour, "e", []string{"compact 42", "defragment", "compact 42", "defragment"}, 1},
		{"NOSPACE at an external cluster: told, not touched", store.Space{Member: 7, Size: 100 * mib, InUse: 10 * mib},
			noSpace, time.Hour, "", nil, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			etcd, n := &fakeEtcd{space: tc.space, alarms: tc.alarms}, &fakeNotifier{}
			k := New(etcd, fakeLease{tc.lease}, n, Options{Site: "s1", Endpoint: tc.endpoint, Channels: []string{"generic://x"},
				Clock: clockwork.NewFakeClock()})
			k.Check(context.Background())
			k.Check(context.Background())
			if fmt.Sprint(etcd.calls) != fmt.Sprint(tc.want) {
				t.Errorf("calls %v, want %v", etcd.calls, tc.want)
			}
			if len(n.events) != tc.wantTells {
				t.Errorf("%d notifications, want %d", len(n.events), tc.wantTells)
			}
		})
	}
}

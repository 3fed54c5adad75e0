package upkeep

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/mao-research/mao/notify"
	"github.com/mao-research/mao/orchestrator/store"
)

// Etcd is what the keeper asks of etcd; *store.Store is one.
type Etcd interface {
	MemberSpace(ctx context.Context, endpoint string) (store.Space, error)
	EtcdAlarms(ctx context.Context) ([]store.Alarm, error)
	Compact(ctx context.Context, rev int64) error
	Defragment(ctx context.Context, endpoint string) error
	DisarmNoSpace(ctx context.Context, member uint64) error
}

// Lease is the site's lease; *store.Membership is one.
type Lease interface {
	Renew(ctx context.Context) error
	Remaining() time.Duration
	TTL() time.Duration
}

// Notifier sends messages asynchronously; notify.Notifier is one.
type Notifier interface {
	Notify(e notify.Event, channels []string)
}

// Options configure a Keeper.
type Options struct {
	Site string
	// Endpoint is the client URL of the site's own embedded member; ""
	// for a site without one (an external cluster): then the keeper only
	// watches the alarms.
	Endpoint string
	// Quota is the own member's database quota in bytes, for when it does
	// not say (default 2 GiB, etcd's).
	Quota int64
	// FreePercent is the free share of the database, in percent, from
	// which the keeper defragments; default 50.
	FreePercent int
	// MinFree is the least free space worth a defragmentation; default
	// 16 MiB.
	MinFree  int64
	Interval time.Duration // how often it looks; default 10s
	Channels []string      // the site's notification channels
	Clock    clockwork.Clock
	Log      *slog.Logger
}

// Defaults.
const (
	DefaultQuota       = 2 << 30
	DefaultFreePercent = 50
	DefaultMinFree     = 16 << 20
	DefaultInterval    = 10 * time.Second
	// assumedRate is the defragmentation speed assumed until one has
	// been measured: bytes in use copied per second (slow disks).
	assumedRate = 32 << 20
	// leaseShare is the part of the lease's remaining validity a
	// defragmentation may take, as estimated.
	leaseShare = 3
	// roomShare: after a NOSPACE alarm, the database must be under this
	// share (percent) of the quota before the alarm is disarmed, or the
	// next writes raise it again.
	roomShare = 75
)

// Keeper keeps a site's etcd within bounds; Run does the work.
type Keeper struct {
	etcd     Etcd
	lease    Lease
	notifier Notifier
	opts     Options

	mu       sync.Mutex
	alarms   []store.Alarm
	notified bool    // the current NOSPACE alarm was notified
	rate     float64 // measured defragmentation speed, bytes in use per second; 0: assumedRate
	waiting  bool    // a defragmentation is due but waits for the lease (logged once)
}

// New returns a Keeper. lease may be nil (a site without a lease, such as
// a witness): then it defragments without that check.
func New(etcd Etcd, lease Lease, n Notifier, opts Options) *Keeper {
	if opts.Quota <= 0 {
		opts.Quota = DefaultQuota
	}
	if opts.FreePercent <= 0 {
		opts.FreePercent = DefaultFreePercent
	}
	if opts.MinFree <= 0 {
		opts.MinFree = DefaultMinFree
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Clock == nil {
		opts.Clock = clockwork.NewRealClock()
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Keeper{etcd: etcd, lease: lease, notifier: n, opts: opts}
}

// Run looks at etcd every interval until ctx ends.
func (k *Keeper) Run(ctx context.Context) {
	for {
		k.Check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-k.opts.Clock.After(k.opts.Interval):
		}
	}
}

// Alarms describes the cluster's alarms as last seen, for health: nil
// when there are none.
func (k *Keeper) Alarms() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for _, a := range k.alarms {
		s := fmt.Sprintf("etcd alarm %s on member %x", a.Kind, a.Member)
		if a.Kind == store.AlarmNoSpace {
			s += ": its database reached its quota and etcd refuses writes until space is freed " +
				"(the site compacts, defragments and disarms it by itself once there is room)"
		}
		out = append(out, s)
	}
	return out
}

// Check looks once: the alarms (notified, and recovered from for the own
// member), then whether the own member needs a defragmentation.
func (k *Keeper) Check(ctx context.Context) {
	alarms, err := k.etcd.EtcdAlarms(ctx)
	if err != nil {
		k.opts.Log.Debug("list etcd alarms", "err", err) // health reports etcd's trouble
		return
	}
	k.mu.Lock()
	k.alarms = alarms
	noSpace := slices.ContainsFunc(alarms, func(a store.Alarm) bool { return a.Kind == store.AlarmNoSpace })
	tell := noSpace && !k.notified
	k.notified = noSpace
	k.mu.Unlock()
	if tell {
		k.opts.Log.Error("etcd raised NOSPACE: its database reached its quota, and it refuses writes until space is freed")
		k.notify(alarms)
	}
	if k.opts.Endpoint == "" {
		return
	}
	space, err := k.etcd.MemberSpace(ctx, k.opts.Endpoint)
	if err != nil {
		k.opts.Log.Debug("etcd member status", "err", err)
		return
	}
	own := slices.Contains(alarms, store.Alarm{Member: space.Member, Kind: store.AlarmNoSpace})
	switch {
	case own:
		k.recover(ctx, space)
	case space.Free() >= k.opts.MinFree && space.Free()*100 >= int64(k.opts.FreePercent)*space.Size:
		k.defragment(ctx, space)
	}
}

// notify sends the one notification of a NOSPACE alarm.
func (k *Keeper) notify(alarms []store.Alarm) {
	if len(k.opts.Channels) == 0 {
		return
	}
	var members []string
	for _, a := range alarms {
		if a.Kind == store.AlarmNoSpace {
			members = append(members, fmt.Sprintf("%x", a.Member))
		}
	}
	k.notifier.Notify(notify.Event{Kind: notify.KindEtcdNoSpace, Site: k.opts.Site, Time: k.opts.Clock.Now().UTC(),
		Reason: fmt.Sprintf("etcd member(s) %v raised NOSPACE: the database reached its quota, and etcd refuses every write "+
			"(runs are not recorded, schedules not changed) until space is freed; mao compacts, defragments and disarms "+
			"the alarm by itself once there is room (delete what is not needed, or raise etcd.quota_backend_bytes)", members)},
		k.opts.Channels)
}

// recover gets the own member out of NOSPACE: compact the history to the
// current revision, defragment, and disarm once the database is back
// under its quota with room to spare.
func (k *Keeper) recover(ctx context.Context, space store.Space) {
	if err := k.etcd.Compact(ctx, space.Revision); err != nil {
		k.opts.Log.Warn("compact etcd after NOSPACE", "err", err)
		return
	}
	if !k.defragment(ctx, space) {
		return
	}
	after, err := k.etcd.MemberSpace(ctx, k.opts.Endpoint)
	if err != nil {
		k.opts.Log.Warn("etcd member status after defragmenting", "err", err)
		return
	}
	quota := after.Quota
	if quota <= 0 {
		quota = k.opts.Quota
	}
	if after.Size*100 >= quota*roomShare {
		k.opts.Log.Warn("etcd is still full after compacting and defragmenting: delete what is not needed, or raise etcd.quota_backend_bytes",
			"db_size", after.Size, "in_use", after.InUse, "quota", quota)
		return
	}
	if err := k.etcd.DisarmNoSpace(ctx, after.Member); err != nil {
		k.opts.Log.Warn("disarm etcd's NOSPACE alarm", "err", err)
		return
	}
	k.opts.Log.Info("etcd has room again: NOSPACE disarmed", "db_size", after.Size, "quota", quota)
}

// waitLogged logs, once until a defragmentation succeeds, that one is due
// but would stall the member for longer than the site's lease allows.
func (k *Keeper) waitLogged(estimate time.Duration, space store.Space) {
	k.mu.Lock()
	first := !k.waiting
	k.waiting = true
	k.mu.Unlock()
	if first {
		k.opts.Log.Warn("etcd's database needs defragmenting, but it would stall the member for longer than the site's lease allows; "+
			"it waits (a longer [site] lease_ttl allows it)", "estimate", estimate, "db_size", space.Size, "in_use", space.InUse)
	}
}

// defragment defragments the own member if the lease allows it now, and
// reports whether it did. An estimate beyond a third of the lease's TTL
// never fits: the lease is not renewed for it every interval.
func (k *Keeper) defragment(ctx context.Context, space store.Space) bool {
	k.mu.Lock()
	rate := k.rate
	k.mu.Unlock()
	if rate <= 0 {
		rate = assumedRate
	}
	estimate := time.Duration(float64(space.InUse) / rate * float64(time.Second))
	if k.lease != nil {
		if estimate > k.lease.TTL()/leaseShare {
			k.waitLogged(estimate, space) // it would not fit even right after a renewal
			return false
		}
		if err := k.lease.Renew(ctx); err != nil {
			k.opts.Log.Debug("renew the lease before defragmenting", "err", err)
			return false
		}
		if left := k.lease.Remaining(); estimate > left/leaseShare {
			k.waitLogged(estimate, space)
			return false
		}
	}
	started := k.opts.Clock.Now()
	if err := k.etcd.Defragment(ctx, k.opts.Endpoint); err != nil {
		k.opts.Log.Warn("defragment etcd", "err", err)
		return false
	}
	took := k.opts.Clock.Since(started)
	k.mu.Lock()
	k.waiting = false
	if took > 0 && space.InUse > 0 {
		k.rate = float64(space.InUse) / took.Seconds()
	}
	k.mu.Unlock()
	k.opts.Log.Info("etcd defragmented", "db_size_before", space.Size, "in_use", space.InUse, "took", took)
	return true
}

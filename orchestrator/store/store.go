package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/toolspec"
)

// ErrUnavailable is the store's error when etcd does not answer in time;
// it is of kind errs.ErrUnavailable.
var ErrUnavailable = errs.New(errs.ErrUnavailable, "etcd unavailable")

// Key directories under the prefix; see docs/etcd-keys.md.
const (
	toolsDir    = "tools/"
	datasetsDir = "datasets/"
	runsDir     = "runs/"
	sitesDir    = "sites/"
)

// Store reads and writes mao's records in etcd.
type Store struct {
	c      *clientv3.Client
	adminC *clientv3.Client                        // for what needs etcd's root role; nil: c
	local  func() ([]*etcdserverpb.Member, uint64) // Options.LocalMembers
	// epMu orders SetEndpoints (write) before or after the status
	// requests of statuses (read): etcd's client reads its endpoints
	// without its lock when it dials one member for its status.
	epMu    sync.RWMutex
	prefix  string
	timeout time.Duration
	clock   clockwork.Clock
	log     *slog.Logger
	invalid invalidRecords
	joined  sync.Map // site name → *Membership: the sites that joined through this store
}

// Options configure a Store.
type Options struct {
	Prefix string // keys live under it; default "/mao/"
	// Timeout bounds each etcd request, after which it fails with
	// ErrUnavailable; default 5s.
	Timeout time.Duration
	// Clock stamps the times the store writes into records (a site's
	// last_seen) and is the site's own clock for its lease: when it was
	// renewed, whether it is still valid, and the waits between renewals
	// (see Membership); default the real clock. Its timers must fire.
	Clock clockwork.Clock
	// Log hears of invalid records, once each; default: discard.
	Log *slog.Logger
	// Admin is a client with etcd's root role, for cluster membership,
	// users and maintenance, when the cluster has access control; nil: the
	// store's own client does those too.
	Admin *clientv3.Client
	// LocalMembers, for a site with an embedded member, is the cluster's
	// members as that member knows them, and the cluster's ID: what
	// federation status shows when no member answers a member list
	// (without a quorum; a learner answers none at all). nil for a site
	// without a member of its own.
	LocalMembers func() ([]*etcdserverpb.Member, uint64)
}

// New returns a Store over the etcd client c.
func New(c *clientv3.Client, opts Options) *Store {
	if opts.Prefix == "" {
		opts.Prefix = "/mao/"
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.Clock == nil {
		opts.Clock = clockwork.NewRealClock()
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Store{c: c, adminC: opts.Admin, local: opts.LocalMembers, prefix: opts.Prefix, timeout: opts.Timeout, clock: opts.Clock, log: opts.Log}
}

func (s *Store) key(dir, name string) string { return s.prefix + dir + name }

// CreateTool stores a new tool. It fails with errs.ErrExists when the name is
// taken, and with a *toolspec.ValidationError when the input dataset it names
// is not registered.
func (s *Store) CreateTool(ctx context.Context, t toolspec.Tool) error {
	var conds []clientv3.Cmp
	if t.InputDataset != "" {
		conds = append(conds, clientv3.Compare(clientv3.CreateRevision(s.key(datasetsDir, t.InputDataset)), ">", 0))
	}
	err := s.create(ctx, s.key(toolsDir, t.Name), t, conds)
	if errors.Is(err, errCondition) {
		return &toolspec.ValidationError{Kind: "tool", Fields: []toolspec.FieldError{{
			Field: "input_dataset", Problem: fmt.Sprintf("no dataset named %q is registered", t.InputDataset)}}}
	}
	return wrapName(err, "tool", t.Name)
}

// Tool returns the named tool or errs.ErrNotFound.
func (s *Store) Tool(ctx context.Context, name string) (toolspec.Tool, error) {
	var t toolspec.Tool
	return t, wrapName(s.get(ctx, s.key(toolsDir, name), &t), "tool", name)
}

// Tools lists every tool, sorted by name.
func (s *Store) Tools(ctx context.Context) ([]toolspec.Tool, error) {
	tools, _, err := list[toolspec.Tool](ctx, s, toolsDir)
	return tools, err
}

// ToolPage lists the valid ones of at most limit tool keys whose names
// sort after after ("" from the first), in name order, and the name to
// read on after ("" after the last): a range read, not the whole
// registry.
func (s *Store) ToolPage(ctx context.Context, after string, limit int) ([]toolspec.Tool, string, error) {
	return namedPage[toolspec.Tool](ctx, s, toolsDir, after, limit)
}

// DatasetPage is ToolPage for datasets.
func (s *Store) DatasetPage(ctx context.Context, after string, limit int) ([]toolspec.Dataset, string, error) {
	return namedPage[toolspec.Dataset](ctx, s, datasetsDir, after, limit)
}

// namedPage reads at most limit records of dir whose names sort after
// after, and the name of the last key read when more follow: a page of
// invalid records (left out, and reported) does not end the list.
func namedPage[T any](ctx context.Context, s *Store, dir, after string, limit int) ([]T, string, error) {
	from := s.prefix + dir
	if after != "" {
		from = s.key(dir, after) + "\x00"
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.c.Get(ctx, from, clientv3.WithRange(clientv3.GetPrefixRangeEnd(s.prefix+dir)), clientv3.WithLimit(int64(limit)))
	if err != nil {
		return nil, "", s.unavailable(ctx, err)
	}
	out := make([]T, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var v T
		if s.decode(string(kv.Key), kv.Value, kv.ModRevision, &v) == nil {
			out = append(out, v)
		}
	}
	if !resp.More || len(resp.Kvs) == 0 {
		return out, "", nil
	}
	return out, strings.TrimPrefix(string(resp.Kvs[len(resp.Kvs)-1].Key), s.prefix+dir), nil
}

// DeleteTool removes a tool; its runs stay.
func (s *Store) DeleteTool(ctx context.Context, name string) error {
	return wrapName(s.delete(ctx, s.key(toolsDir, name)), "tool", name)
}

// CreateDataset stores a new dataset or fails with errs.ErrExists.
func (s *Store) CreateDataset(ctx context.Context, d toolspec.Dataset) error {
	return wrapName(s.create(ctx, s.key(datasetsDir, d.Name), d, nil), "dataset", d.Name)
}

// Dataset returns the named dataset or errs.ErrNotFound.
func (s *Store) Dataset(ctx context.Context, name string) (toolspec.Dataset, error) {
	var d toolspec.Dataset
	return d, wrapName(s.get(ctx, s.key(datasetsDir, name), &d), "dataset", name)
}

// Datasets lists every dataset, sorted by name.
func (s *Store) Datasets(ctx context.Context) ([]toolspec.Dataset, error) {
	ds, _, err := list[toolspec.Dataset](ctx, s, datasetsDir)
	return ds, err
}

// DeleteDataset removes a dataset unless a tool names it as its input, in
// which case it fails with errs.ErrInUse. The check and the delete are one
// transaction: a tool registered in between makes it try again.
func (s *Store) DeleteDataset(ctx context.Context, name string) error {
	for {
		tools, rev, err := list[toolspec.Tool](ctx, s, toolsDir)
		if err != nil {
			return err
		}
		var users []string
		for _, t := range tools {
			if t.InputDataset == name {
				users = append(users, t.Name)
			}
		}
		if len(users) > 0 {
			return fmt.Errorf("dataset %s is the input of tool %s: %w", name, strings.Join(users, ", "), errs.ErrInUse)
		}
		unchanged := clientv3.Compare(clientv3.ModRevision(s.prefix+toolsDir).WithPrefix(), "<", rev+1)
		err = s.delete(ctx, s.key(datasetsDir, name), unchanged)
		if !errors.Is(err, errCondition) {
			return wrapName(err, "dataset", name)
		}
	}
}

// CreateRun stores a new run record; its ID must be unused.
func (s *Store) CreateRun(ctx context.Context, r api.Run) error {
	key := s.key(runsDir, r.ID)
	err := s.txn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)}, s.runOps(nil, &r)...)
	if errors.Is(err, errCondition) {
		err = errs.ErrExists
	}
	return wrapName(err, "run", r.ID)
}

// ErrNotHeld means a site tried to record a run that another site holds
// now: the run was lost by the first (its lease expired) and taken over.
var ErrNotHeld = errs.New(errs.ErrChanged, "the run is held by another site")

// SaveRun overwrites a run record, but only while r.Site holds the run and
// r is not an older attempt than the stored one: a run that another site
// took over (see LoseRun), that was lost and claimed again, or that was
// settled as lost for good, fails with ErrNotHeld. A record that is gone is written again, and one that is not
// a valid record is overwritten.
func (s *Store) SaveRun(ctx context.Context, r api.Run) error {
	key := s.key(runsDir, r.ID)
	for {
		var cur api.Run
		prev := &cur
		rev, err := s.getRev(ctx, key, &cur)
		switch {
		case errors.Is(err, errs.ErrNotFound):
			// Gone (rev 0): written again; or invalid: overwritten, at
			// its revision.
			prev = nil
		case err != nil:
			return wrapName(err, "run", r.ID)
		case cur.Site != r.Site:
			return fmt.Errorf("run %s at site %s: %w (%q)", r.ID, r.Site, ErrNotHeld, cur.Site)
		case cur.State == api.StateLost:
			// Settled as lost for good by another site (LoseRun): the
			// attempt is over, whatever its site has to say.
			return fmt.Errorf("run %s at site %s: %w (it was settled as lost)", r.ID, r.Site, ErrNotHeld)
		case max(r.Attempt, 1) < max(cur.Attempt, 1):
			// A later attempt was claimed since, possibly by this site:
			// the record of an abandoned older one must not replace it.
			return fmt.Errorf("run %s, attempt %d: %w (attempt %d is recorded)", r.ID, r.Attempt, ErrNotHeld, cur.Attempt)
		}
		err = s.txn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", rev)}, s.runOps(prev, &r)...)
		if !errors.Is(err, errCondition) {
			return wrapName(err, "run", r.ID)
		}
	}
}

// UpdateRun changes the record of run id by fn, in a compare-and-swap
// (fn is called again when the record changed meanwhile), and returns the
// stored record. An error from fn leaves the record as it was and is
// returned; a record that is gone (or invalid) is errs.ErrNotFound.
func (s *Store) UpdateRun(ctx context.Context, id string, fn func(api.Run) (api.Run, error)) (api.Run, error) {
	key := s.key(runsDir, id)
	for {
		var cur api.Run
		rev, err := s.getRev(ctx, key, &cur)
		if err != nil {
			return api.Run{}, wrapName(err, "run", id)
		}
		next, err := fn(cur)
		if err != nil {
			return cur, err
		}
		err = s.txn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", rev)}, s.runOps(&cur, &next)...)
		if !errors.Is(err, errCondition) {
			return next, wrapName(err, "run", id)
		}
	}
}

// Run returns one run record or errs.ErrNotFound.
func (s *Store) Run(ctx context.Context, id string) (api.Run, error) {
	var r api.Run
	return r, wrapName(s.get(ctx, s.key(runsDir, id), &r), "run", id)
}

// Sites lists the sites whose membership lease is alive, sorted by name.
func (s *Store) Sites(ctx context.Context) ([]api.Site, error) {
	sites, _, err := list[api.Site](ctx, s, sitesDir)
	return sites, err
}

// errCondition means a transaction's extra conditions did not hold.
var errCondition = errors.New("transaction condition failed")

// create puts v at key (with opts) only if key does not exist and every
// cond holds.
func (s *Store) create(ctx context.Context, key string, v any, conds []clientv3.Cmp, opts ...clientv3.OpOption) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	absent := clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
	resp, err := s.c.Txn(ctx).
		If(append([]clientv3.Cmp{absent}, conds...)...).
		Then(clientv3.OpPut(key, string(data), opts...)).
		Else(clientv3.OpGet(key, clientv3.WithCountOnly())).
		Commit()
	if err != nil {
		return s.unavailable(ctx, err)
	}
	if resp.Succeeded {
		return nil
	}
	if resp.Responses[0].GetResponseRange().Count > 0 {
		return errs.ErrExists
	}
	return errCondition
}

func (s *Store) put(ctx context.Context, key string, v any, opts ...clientv3.OpOption) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if _, err := s.c.Put(ctx, key, string(data), opts...); err != nil {
		return s.unavailable(ctx, err)
	}
	return nil
}

func (s *Store) get(ctx context.Context, key string, v any) error {
	_, err := s.getRev(ctx, key, v)
	return err
}

// getRev decodes key into v and returns the revision it was last changed
// at: 0 and ErrNotFound when the key is absent, its revision and errInvalid
// (of kind ErrNotFound) when its value is not a valid record.
func (s *Store) getRev(ctx context.Context, key string, v any) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.c.Get(ctx, key)
	if err != nil {
		return 0, s.unavailable(ctx, err)
	}
	if len(resp.Kvs) == 0 {
		return 0, errs.ErrNotFound
	}
	kv := resp.Kvs[0]
	return kv.ModRevision, s.decode(key, kv.Value, kv.ModRevision, v)
}

// putIf puts v at key if every cond holds, else fails with errCondition.
func (s *Store) putIf(ctx context.Context, key string, v any, conds ...clientv3.Cmp) error {
	return s.txn(ctx, conds, op{key: key, v: v})
}

// op is one write of a transaction: a put of v at key, or a delete when
// del is set.
type op struct {
	key string
	v   any
	del bool
}

// txn applies ops in one transaction if every cond holds, else fails with
// errCondition.
func (s *Store) txn(ctx context.Context, conds []clientv3.Cmp, ops ...op) error {
	eops, err := etcdOps(ops)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.c.Txn(ctx).If(conds...).Then(eops...).Commit()
	if err != nil {
		return s.unavailable(ctx, err)
	}
	if !resp.Succeeded {
		return errCondition
	}
	return nil
}

// etcdOps encodes ops as etcd's.
func etcdOps(ops []op) ([]clientv3.Op, error) {
	eops := make([]clientv3.Op, len(ops))
	for i, o := range ops {
		if o.del {
			eops[i] = clientv3.OpDelete(o.key)
			continue
		}
		data, err := json.Marshal(o.v)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", o.key, err)
		}
		eops[i] = clientv3.OpPut(o.key, string(data))
	}
	return eops, nil
}

// delete removes key if it exists and every cond holds.
func (s *Store) delete(ctx context.Context, key string, conds ...clientv3.Cmp) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	exists := clientv3.Compare(clientv3.CreateRevision(key), ">", 0)
	resp, err := s.c.Txn(ctx).
		If(append([]clientv3.Cmp{exists}, conds...)...).
		Then(clientv3.OpDelete(key)).
		Else(clientv3.OpGet(key, clientv3.WithCountOnly())).
		Commit()
	if err != nil {
		return s.unavailable(ctx, err)
	}
	if resp.Succeeded {
		return nil
	}
	if resp.Responses[0].GetResponseRange().Count == 0 {
		return errs.ErrNotFound
	}
	return errCondition
}

// list decodes every value under dir, in key order, and returns the store
// revision it read at. Invalid records are left out (and reported).
func list[T any](ctx context.Context, s *Store, dir string, opts ...clientv3.OpOption) ([]T, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	whole := len(opts) == 0 // no limit nor range of its own: the whole directory
	opts = append(opts, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	resp, err := s.c.Get(ctx, s.prefix+dir, opts...)
	if err != nil {
		return nil, 0, s.unavailable(ctx, err)
	}
	out := make([]T, 0, len(resp.Kvs))
	found := make(map[string]bool, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		found[string(kv.Key)] = true
		var v T
		if s.decode(string(kv.Key), kv.Value, kv.ModRevision, &v) == nil {
			out = append(out, v)
		}
	}
	if whole {
		s.pruneInvalid(s.prefix+dir, found)
	}
	return out, resp.Header.Revision, nil
}

// ErrFull is the store's error when etcd refuses a write for NOSPACE; it
// is of kind errs.ErrFull.
var ErrFull = errs.New(errs.ErrFull, "etcd's database reached its quota (NOSPACE) and refuses writes until space is freed "+
	"(the site compacts, defragments and disarms the alarm by itself once there is room; maoctl federation status shows it)")

// unavailable turns a failed etcd request into ErrUnavailable, unless the
// caller's own context ended, and a refusal for NOSPACE into ErrFull.
func (s *Store) unavailable(ctx context.Context, err error) error {
	if errors.Is(err, rpctypes.ErrNoSpace) {
		return fmt.Errorf("%w: %v", ErrFull, err)
	}
	if ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		if errors.Is(err, context.DeadlineExceeded) || isUnavailable(err) {
			return fmt.Errorf("%w at %s: %v", ErrUnavailable, strings.Join(s.c.Endpoints(), ","), err)
		}
	}
	return fmt.Errorf("etcd: %w", err)
}

func isUnavailable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	return errors.Is(err, context.DeadlineExceeded)
}

// wrapName adds the record's kind and name to store errors.
func wrapName(err error, kind, name string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errs.ErrNotFound):
		return fmt.Errorf("no %s named %q: %w", kind, name, err)
	case errors.Is(err, errs.ErrExists):
		return fmt.Errorf("a %s named %q is already registered: %w", kind, name, err)
	}
	return err
}

// Ping checks that etcd answers a read within the request timeout.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if _, err := s.c.Get(ctx, s.prefix, clientv3.WithCountOnly()); err != nil {
		return s.unavailable(ctx, err)
	}
	return nil
}

// registryDir is the key directory of a registry kind.
func registryDir(kind string) string {
	if kind == toolspec.KindDataset {
		return datasetsDir
	}
	return toolsDir
}

// ListRegistry returns every record of a registry kind, and the revision
// it read at, for WatchRegistry.
func (s *Store) ListRegistry(ctx context.Context, kind string) ([]toolspec.RegistryEvent, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.c.Get(ctx, s.prefix+registryDir(kind), clientv3.WithPrefix())
	if err != nil {
		return nil, 0, s.unavailable(ctx, err)
	}
	out := make([]toolspec.RegistryEvent, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if e, ok := s.registryEvent(kind, kv, true, true); ok {
			out = append(out, e)
		}
	}
	return out, resp.Header.Revision, nil
}

// WatchRegistry reports changes to a registry kind after revision rev,
// with the revision each batch brings the watch to, until ctx ends or the
// watch fails; then it closes the channel and the caller lists the records
// again. The watch has a stream of its own, which RegistryProgress asks
// for a progress report on.
func (s *Store) WatchRegistry(ctx context.Context, kind string, rev int64) <-chan toolspec.RegistryBatch {
	return follow(ctx, s, s.prefix+registryDir(kind), rev, registryStream(kind), func(ev *clientv3.Event) (toolspec.RegistryEvent, bool) {
		return s.registryEvent(kind, ev.Kv, ev.Type == clientv3.EventTypePut, false)
	}, func(rev int64, evs []toolspec.RegistryEvent) (toolspec.RegistryBatch, bool) {
		return toolspec.RegistryBatch{Rev: rev, Events: evs}, true
	})
}

// RegistryProgress asks etcd to report the progress of the registry
// kind's watch: a batch with no events and the current revision, once the
// watch has caught up with it.
func (s *Store) RegistryProgress(ctx context.Context, kind string) error {
	if err := s.c.RequestProgress(watchContext(ctx, registryStream(kind))); err != nil {
		return s.unavailable(ctx, err)
	}
	return nil
}

// registryStream names the watch stream of a registry kind.
func registryStream(kind string) string { return "registry-" + kind }

// registryEvent is the event of a record (put) or of its deletion. An
// invalid record is left out of a listing, and is as good as a deletion in
// a watch: whatever the key held before is no longer to be used.
func (s *Store) registryEvent(kind string, kv *mvccpb.KeyValue, put, listed bool) (toolspec.RegistryEvent, bool) {
	e := toolspec.RegistryEvent{Kind: kind, Name: strings.TrimPrefix(string(kv.Key), s.prefix+registryDir(kind))}
	if !put {
		return e, true
	}
	if kind == toolspec.KindDataset {
		e.Dataset = new(toolspec.Dataset)
		if s.decode(string(kv.Key), kv.Value, kv.ModRevision, e.Dataset) != nil {
			e.Dataset = nil // an invalid record: as good as deleted
		}
	} else {
		e.Tool = new(toolspec.Tool)
		if s.decode(string(kv.Key), kv.Value, kv.ModRevision, e.Tool) != nil {
			e.Tool = nil
		}
	}
	return e, !listed || e.Tool != nil || e.Dataset != nil
}

package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/notify"
	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/orchestrator/pki"
	"github.com/mao-research/mao/orchestrator/runs"
	"github.com/mao-research/mao/toolspec"
)

// errInvalid is a record in etcd that does not hold what its key says it
// does: it is not used. Anyone with a certificate of the federation may
// write etcd directly, so every record is checked as if it came from the
// API before the store returns it.
var errInvalid = errs.New(errs.ErrNotFound, "an invalid record")

// invalidRecords remembers the records the store refused, so that each is
// logged once and can be reported.
type invalidRecords struct {
	mu  sync.Mutex
	got map[string]invalidAt
}

type invalidAt struct {
	reason string
	rev    int64
}

// InvalidRecords lists, by key, the records the store has refused and
// that were not rewritten or deleted since, under the given key
// directories ("tools", "runs", "sites-seen", ...: the names of
// docs/etcd-keys.md), or all of them when dirs is empty. A list of a
// directory leaves out its invalid records and notes them here, so what
// it returns right after a list is what that list left out.
func (s *Store) InvalidRecords(dirs ...string) []api.InvalidRecord {
	s.invalid.mu.Lock()
	defer s.invalid.mu.Unlock()
	out := []api.InvalidRecord{}
	for k, v := range s.invalid.got {
		if len(dirs) == 0 || slices.ContainsFunc(dirs, func(d string) bool { return strings.HasPrefix(k, s.prefix+d+"/") }) {
			out = append(out, api.InvalidRecord{Key: k, Reason: v.reason})
		}
	}
	slices.SortFunc(out, func(a, b api.InvalidRecord) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// forgetInvalid drops key from the refused records: it was deleted.
func (s *Store) forgetInvalid(key string) {
	s.invalid.mu.Lock()
	defer s.invalid.mu.Unlock()
	delete(s.invalid.got, key)
}

// pruneInvalid drops the refused records under prefix that a read of all
// of it did not find (found holds the keys it read): they were deleted.
func (s *Store) pruneInvalid(prefix string, found map[string]bool) {
	s.invalid.mu.Lock()
	defer s.invalid.mu.Unlock()
	for k := range s.invalid.got {
		if strings.HasPrefix(k, prefix) && !found[k] {
			delete(s.invalid.got, k)
		}
	}
}

// CheckRecords reads every record of the federation, directory by
// directory, and checks each as it would when it uses it: the answer of
// maoctl federation check. It reads each directory whole, so it costs
// what a list of every run costs.
func (s *Store) CheckRecords(ctx context.Context) (api.Check, error) {
	check := func(dir string, decode func(kv *mvccpb.KeyValue) error) (int, error) {
		ctx, cancel := context.WithTimeout(ctx, s.timeout)
		defer cancel()
		prefix := s.prefix + dir
		resp, err := s.c.Get(ctx, prefix, clientv3.WithPrefix())
		if err != nil {
			return 0, s.unavailable(ctx, err)
		}
		found := make(map[string]bool, len(resp.Kvs))
		for _, kv := range resp.Kvs {
			found[string(kv.Key)] = true
			_ = decode(kv) // noted in s.invalid
		}
		s.pruneInvalid(prefix, found)
		return len(resp.Kvs), nil
	}
	as := func(newRecord func() any) func(kv *mvccpb.KeyValue) error {
		return func(kv *mvccpb.KeyValue) error {
			return s.decode(string(kv.Key), kv.Value, kv.ModRevision, newRecord())
		}
	}
	dirs := []struct {
		dir    string
		decode func(kv *mvccpb.KeyValue) error
	}{
		{toolsDir, as(func() any { return new(toolspec.Tool) })},
		{datasetsDir, as(func() any { return new(toolspec.Dataset) })},
		{schedulesDir, as(func() any { return new(toolspec.Schedule) })},
		{scheduleRunDir, as(func() any { return new(indexEntry) })},
		{runsDir, as(func() any { return new(api.Run) })},
		{runIndexDir, func(kv *mvccpb.KeyValue) error {
			if strings.HasPrefix(string(kv.Key), s.prefix+runIndexBuilt) {
				return as(func() any { return new(builtRecord) })(kv)
			}
			return as(func() any { return new(runRef) })(kv)
		}},
		{requestsDir, as(func() any { return new(runs.Request) })},
		{sitesDir, as(func() any { return new(api.Site) })},
		{seenDir, as(func() any { return new(seenRecord) })},
		{seriesDir, as(func() any { return new(api.Series) })},
		{pointsDir, as(func() any { return new(api.SeriesPoint) })},
		{notifyStateDir, as(func() any { return new(notify.State) })},
		{notificationsDir, as(func() any { return new(api.Notification) })},
		{joinDir, as(func() any { return new(pki.JoinGrant) })},
		{caKey, as(func() any { return new(caRecord) })},
	}
	var out api.Check
	for _, d := range dirs {
		n, err := check(d.dir, d.decode)
		if err != nil {
			return api.Check{}, err
		}
		out.Records += n
	}
	out.Invalid = s.InvalidRecords()
	return out, nil
}

// decode reads the value of key (last changed at rev) into v and checks it
// (checkRecord); a value that fails is reported once, and errInvalid.
func (s *Store) decode(key string, value []byte, rev int64, v any) error {
	name := s.recordName(key)
	err := json.Unmarshal(value, v)
	if err != nil {
		err = fmt.Errorf("not the JSON of a record: %v", err)
	} else {
		err = checkRecord(name, v)
	}
	s.invalid.mu.Lock()
	defer s.invalid.mu.Unlock()
	if err == nil {
		delete(s.invalid.got, key)
		if t, ok := v.(*toolspec.Tool); ok {
			t.Revision = rev // what ran says which record it was prepared from
		}
		return nil
	}
	if prev, ok := s.invalid.got[key]; !ok || prev.rev != rev {
		if s.invalid.got == nil {
			s.invalid.got = map[string]invalidAt{}
		}
		s.invalid.got[key] = invalidAt{reason: err.Error(), rev: rev}
		s.log.Warn("an invalid record in etcd is left out; fix or delete it", "key", key, "reason", err)
	}
	return fmt.Errorf("%s: %s: %w", key, err, errInvalid)
}

// recordName is a record's key below its directory: the part of the key
// that the record must agree with ("<tool>/<site>/<metric>" for a series).
func (s *Store) recordName(key string) string {
	rest := strings.TrimPrefix(key, s.prefix)
	_, name, _ := strings.Cut(rest, "/")
	return name
}

// checkRecord checks a decoded record against its key name and its own
// rules, as the API would check it: a name that becomes a file or a URL
// must be one.
func checkRecord(name string, v any) error {
	switch r := v.(type) {
	case *toolspec.Tool:
		return sameName("name", r.Name, name, r.ValidateStored)
	case *toolspec.Dataset:
		return sameName("name", r.Name, name, r.ValidateStored)
	case *toolspec.Schedule:
		return sameName("id", r.ID, name, r.Validate)
	case *api.Run:
		return checkRun(*r, name)
	case *api.Site:
		return sameName("name", r.Name, name, func() error { return toolspec.CheckName(r.Name) })
	case *seenRecord:
		return sameName("name", r.Name, name, func() error { return toolspec.CheckName(r.Name) })
	case *witnessRecord:
		return sameName("name", r.Name, name, func() error { return toolspec.CheckName(r.Name) })
	case *runs.Request:
		return sameName("run", r.Run, name, func() error {
			return errors.Join(runs.CheckID(r.Run), toolspec.CheckName(r.Tool), r.Target.Validate())
		})
	case *api.SeriesPoint:
		return checkPoint(*r, name)
	case *api.Series:
		return sameName("tool/site/metric", r.Tool+"/"+r.Site+"/"+r.Metric, name,
			func() error { return errors.Join(toolspec.CheckName(r.Tool), toolspec.CheckName(r.Site)) })
	case *api.Notification:
		return sameName("id", r.ID, name, func() error { return nil })
	case *pki.JoinGrant:
		return sameName("id", r.ID, name, func() error { return toolspec.CheckName(r.Site) })
	case *indexEntry:
		return runs.CheckID(r.Run)
	case *runRef:
		return checkRunRef(r.Run, name)
	case *builtRecord:
		if r.Version < 1 {
			return fmt.Errorf("version %d: want 1 or more", r.Version)
		}
	}
	return nil
}

// checkPoint checks a series point against its key's name,
// <tool>/<site>/<metric>/<time>-<run>.
func checkPoint(p api.SeriesPoint, name string) error {
	parts := strings.SplitN(name, "/", 3)
	slash := strings.LastIndex(name, "/")
	if len(parts) < 3 || slash <= len(parts[0])+len(parts[1])+1 {
		return fmt.Errorf("its key's name %q is not <tool>/<site>/<metric>/<time>-<run>", name)
	}
	if err := errors.Join(toolspec.CheckName(parts[0]), toolspec.CheckName(parts[1]), runs.CheckID(p.Run)); err != nil {
		return err
	}
	if want := pointName(p); name[slash+1:] != want {
		return fmt.Errorf("its key names %q, not its time and run %q", name[slash+1:], want)
	}
	return nil
}

// sameName checks that a record's field is its key's name, then the rest.
func sameName(field, got, want string, rest func() error) error {
	if got != want {
		return fmt.Errorf("its %s is %q, not the key's %q", field, got, want)
	}
	return rest()
}

// checkRun checks a run record: its ID is its key's and can name a file,
// and the names in it are names.
func checkRun(r api.Run, name string) error {
	if r.ID != name {
		return fmt.Errorf("its id is %q, not the key's %q", r.ID, name)
	}
	problems := []error{runs.CheckID(r.ID), toolspec.CheckName(r.Tool)}
	if r.Site != "" {
		problems = append(problems, toolspec.CheckName(r.Site))
	}
	if !r.State.Valid() {
		problems = append(problems, fmt.Errorf("state %q is not a run state", r.State))
	}
	if r.Target != nil {
		problems = append(problems, r.Target.Validate())
	}
	problems = append(problems, runs.CheckSpec(r), runs.CheckReplay(r))
	if p := r.Push; p != nil {
		problems = append(problems, checkPush(*p))
	}
	return errors.Join(problems...)
}

// checkPush checks a run's push: a push state, and a branch that is one.
func checkPush(p api.Push) error {
	var problems []error
	if !p.State.Valid() {
		problems = append(problems, fmt.Errorf("push state %q is not a push state", p.State))
	}
	if p.Branch != "" {
		problems = append(problems, toolspec.CheckBranch(p.Branch))
	}
	if p.State.Done() && (p.Branch == "" || p.Commit == "") {
		problems = append(problems, fmt.Errorf("push state %s without its branch and commit", p.State))
	}
	if p.Attempts < 0 {
		problems = append(problems, fmt.Errorf("push attempts %d is negative", p.Attempts))
	}
	return errors.Join(problems...)
}

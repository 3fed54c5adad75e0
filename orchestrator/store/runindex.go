package store

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/orchestrator/runs"
)

// The run index: keys under run-index/ that point at run records, so that
// no read has to go through every run the federation ever made. Each is
// written in the transaction that writes the run record it points at,
// and its value is {"run": "<id>"}. A reader trusts an entry only when the
// record it points at still belongs there: an entry left behind (by a
// hand edit, or by a site of an older version) is skipped.
//
//	run-index/time/<pos>              every run
//	run-index/tool/<tool>/<pos>       every run, by tool
//	run-index/held/<site>/<id>        runs a site holds that have not ended
//	run-index/push/<site>/<id>        runs whose push is pending or failed
//	run-index/manual/<site>/<pos>     runs asked for by hand that a site holds or held
//
// <pos> is a run's position in time, <age>-<id>, where <age> is 2^63-1
// minus its created_at in Unix nanoseconds, 20 digits: keys sort newest
// first, so that a page is a range read in etcd's own order (etcd reads a
// whole range to answer it in descending order).
const (
	runIndexDir = "run-index/"
	// runIndexBuilt/<site> marks that the site indexed every run record
	// when it first started at this version; its value is {"version": N}.
	runIndexBuilt   = runIndexDir + "built/"
	runIndexVersion = 1
)

// The indexes, in the order of indexKeys' answer.
const (
	idxTime = iota
	idxTool
	idxHeld
	idxPush
	idxManual
	nIndexes
)

// indexDir is the directory of index i under run-index/.
func indexDir(i int) string {
	return runIndexDir + [nIndexes]string{"time/", "tool/", "held/", "push/", "manual/"}[i]
}

// stampDigits is the width of a position's time.
const stampDigits = 20

// runPos is a run's position in time: <2^63-1 - created unix
// nanoseconds>-<id>.
func runPos(r api.Run) string {
	var ns int64
	switch t := r.CreatedAt; {
	case t.Unix() <= 0:
	case t.Unix() >= math.MaxInt64/int64(time.Second):
		ns = math.MaxInt64
	default:
		ns = t.UnixNano()
	}
	return fmt.Sprintf("%0*d-%s", stampDigits, math.MaxInt64-ns, r.ID)
}

// sinceStamp is the age part of the position of the oldest runs created at
// t or later: their positions sort before (stamp + ".").
func sinceStamp(t time.Time) string {
	return runPos(api.Run{CreatedAt: t})[:stampDigits]
}

// posID is the run ID of a position, or "" when pos is not one.
func posID(pos string) string {
	if len(pos) < stampDigits+2 || pos[stampDigits] != '-' {
		return ""
	}
	for _, c := range pos[:stampDigits] {
		if c < '0' || c > '9' {
			return ""
		}
	}
	if id := pos[stampDigits+1:]; runs.CheckID(id) == nil {
		return id
	}
	return ""
}

// indexKeys are the index keys of a run record, in index order; "" where
// the record is not in that index.
func (s *Store) indexKeys(r api.Run) [nIndexes]string {
	var k [nIndexes]string
	pos := runPos(r)
	k[idxTime] = s.key(indexDir(idxTime), pos)
	k[idxTool] = s.key(indexDir(idxTool), r.Tool+"/"+pos)
	if r.Site != "" && !r.State.Terminal() {
		k[idxHeld] = s.key(indexDir(idxHeld), r.Site+"/"+r.ID)
	}
	if r.Site != "" && r.Push != nil && !r.Push.State.Done() {
		k[idxPush] = s.key(indexDir(idxPush), r.Site+"/"+r.ID)
	}
	if r.Site != "" && runs.ByHand(r) {
		k[idxManual] = s.key(indexDir(idxManual), r.Site+"/"+pos)
	}
	return k
}

// runOps are the writes that replace the record prev with next: a put of
// next (a delete of prev when next is nil), and the index entries that
// change between them. prev is nil for a record that is new, gone or
// invalid.
func (s *Store) runOps(prev, next *api.Run) []op {
	var ops []op
	var old, cur [nIndexes]string
	if prev != nil {
		old = s.indexKeys(*prev)
	}
	id := ""
	if next != nil {
		id = next.ID
		cur = s.indexKeys(*next)
		ops = append(ops, op{key: s.key(runsDir, next.ID), v: *next})
	} else if prev != nil {
		id = prev.ID
		ops = append(ops, op{key: s.key(runsDir, prev.ID), del: true})
	}
	for i := range nIndexes {
		if old[i] == cur[i] {
			continue
		}
		if old[i] != "" {
			ops = append(ops, op{key: old[i], del: true})
		}
		if cur[i] != "" {
			ops = append(ops, op{key: cur[i], v: indexEntry{Run: id}})
		}
	}
	return ops
}

// getRuns reads the records of ids, a few transactions of reads, and
// returns those that exist and are valid, in the order of ids, and the
// revision each was last changed at.
func (s *Store) getRuns(ctx context.Context, ids []string) ([]api.Run, map[string]int64, error) {
	const chunk = 64 // below etcd's default of 128 operations per transaction
	out := make([]api.Run, 0, len(ids))
	revs := make(map[string]int64, len(ids))
	for len(ids) > 0 {
		n := min(chunk, len(ids))
		gets := make([]clientv3.Op, n)
		for i, id := range ids[:n] {
			gets[i] = clientv3.OpGet(s.key(runsDir, id))
		}
		tctx, cancel := context.WithTimeout(ctx, s.timeout)
		resp, err := s.c.Txn(tctx).Then(gets...).Commit()
		if err != nil {
			err = s.unavailable(tctx, err)
			cancel()
			return nil, nil, err
		}
		cancel()
		for _, r := range resp.Responses {
			for _, kv := range r.GetResponseRange().Kvs {
				var run api.Run
				if s.decode(string(kv.Key), kv.Value, kv.ModRevision, &run) == nil {
					out, revs[run.ID] = append(out, run), kv.ModRevision
				}
			}
		}
		ids = ids[n:]
	}
	return out, revs, nil
}

// indexedRuns reads every entry of index i under sub (a directory of it,
// such as "<site>/") and returns the runs they point at that belong
// there, and the revision each was last changed at.
func (s *Store) indexedRuns(ctx context.Context, i int, sub string) ([]api.Run, map[string]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	prefix := s.key(indexDir(i), sub)
	resp, err := s.c.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, nil, s.unavailable(ctx, err)
	}
	// A run may have several entries (one left behind beside the one
	// that belongs): it is kept when one of them is its own.
	keys := make(map[string]map[string]bool, len(resp.Kvs)) // run ID → its entries' keys
	ids := make([]string, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		key := string(kv.Key)
		id := entryID(i, key[strings.LastIndexByte(key, '/')+1:])
		if id == "" {
			continue
		}
		if keys[id] == nil {
			keys[id] = map[string]bool{}
			ids = append(ids, id)
		}
		keys[id][key] = true
	}
	found, revs, err := s.getRuns(ctx, ids)
	if err != nil {
		return nil, nil, err
	}
	return slices.DeleteFunc(found, func(r api.Run) bool { return !keys[r.ID][s.indexKeys(r)[i]] }), revs, nil
}

// entryID is the run ID that the last segment of an entry of index i
// names, or "".
func entryID(i int, last string) string {
	switch i {
	case idxHeld, idxPush:
		if runs.CheckID(last) == nil {
			return last
		}
		return ""
	}
	return posID(last)
}

// HeldRuns lists the runs that have not ended and that a site holds: site's
// alone, or every site's when site is "". It reads the index of runs held,
// never every run.
func (s *Store) HeldRuns(ctx context.Context, site string) ([]api.Run, error) {
	sub := ""
	if site != "" {
		sub = site + "/"
	}
	held, _, err := s.indexedRuns(ctx, idxHeld, sub)
	return held, err
}

// PushingRuns lists site's runs whose push is pending or failed.
func (s *Store) PushingRuns(ctx context.Context, site string) ([]api.Run, error) {
	pushing, _, err := s.indexedRuns(ctx, idxPush, site+"/")
	return pushing, err
}

// Page sizes of run lists.
const (
	DefaultRunLimit = 100
	MaxRunLimit     = 1000
	// scanBatch is how many index entries a page reads at a time;
	// maxScan bounds the entries one page reads in all, so that a filter
	// that matches little answers a shorter page (with a continue token)
	// instead of reading the whole index.
	scanBatch = 1024
	maxScan   = 20000
)

// ErrBadContinue is a continue token that no list gave.
var ErrBadContinue = errs.New(errs.ErrInvalid, "continue: not a token that a run list gave")

// encodeContinue and decodeContinue turn a position into an opaque token.
func encodeContinue(pos string) string { return base64.RawURLEncoding.EncodeToString([]byte(pos)) }

func decodeContinue(token string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || posID(string(b)) == "" {
		return "", ErrBadContinue
	}
	return string(b), nil
}

// RunPage lists a page of runs, newest first, that f selects, and the
// continue token of the next page ("" after the last). f.Limit is the
// page's size (0: DefaultRunLimit; at most MaxRunLimit). A filter that
// matches few runs may answer a page shorter than the limit, with a
// token. It reads an index: a tool's runs, the runs whose push is not
// done, a schedule's, or all by time; never every run.
func (s *Store) RunPage(ctx context.Context, f api.RunFilter) ([]api.Run, string, error) {
	limit := f.Limit
	switch {
	case limit <= 0:
		limit = DefaultRunLimit
	case limit > MaxRunLimit:
		return nil, "", errs.New(errs.ErrInvalid, fmt.Sprintf("limit %d: at most %d", limit, MaxRunLimit))
	}
	before := ""
	if f.Continue != "" {
		var err error
		if before, err = decodeContinue(f.Continue); err != nil {
			return nil, "", err
		}
	}
	keep := func(r api.Run) bool {
		return (f.Tool == "" || r.Tool == f.Tool) && (f.Site == "" || r.Site == f.Site) &&
			(f.State == "" || r.State == f.State) && (f.Schedule == "" || r.Schedule == f.Schedule) &&
			(f.Push == "" || r.Push != nil && r.Push.State == f.Push) &&
			(f.Since.IsZero() || !r.CreatedAt.Before(f.Since))
	}
	switch {
	case f.Schedule != "":
		all, err := s.ScheduledRuns(ctx, f.Schedule) // at most the schedule's history
		if err != nil {
			return nil, "", err
		}
		return pageOf(all, keep, before, limit)
	case f.Push == api.PushPending || f.Push == api.PushFailed:
		site := ""
		if f.Site != "" {
			site = f.Site + "/"
		}
		all, _, err := s.indexedRuns(ctx, idxPush, site)
		if err != nil {
			return nil, "", err
		}
		return pageOf(all, keep, before, limit)
	case f.State == api.StateRunning || f.State == api.StatePending:
		// Runs that have not ended: those a site holds, and those that
		// wait for one (their requests).
		all, _, err := s.indexedRuns(ctx, idxHeld, "")
		if err != nil {
			return nil, "", err
		}
		if f.State == api.StatePending {
			reqs, _, err := list[runs.Request](ctx, s, requestsDir)
			if err != nil {
				return nil, "", err
			}
			ids := make([]string, len(reqs))
			for i, r := range reqs {
				ids[i] = r.Run
			}
			waiting, _, err := s.getRuns(ctx, ids)
			if err != nil {
				return nil, "", err
			}
			all = append(all, slices.DeleteFunc(waiting, func(r api.Run) bool { return r.Site != "" })...)
		}
		return pageOf(all, keep, before, limit)
	case f.Tool != "":
		return s.scan(ctx, s.key(indexDir(idxTool), f.Tool+"/"), f.Since, before, keep, limit)
	}
	return s.scan(ctx, s.key(indexDir(idxTime), ""), f.Since, before, keep, limit)
}

// pageOf pages a list read whole: newest first, those before the position
// before (when set) that keep keeps, at most limit.
func pageOf(all []api.Run, keep func(api.Run) bool, before string, limit int) ([]api.Run, string, error) {
	slices.SortFunc(all, func(a, b api.Run) int { return strings.Compare(runPos(a), runPos(b)) })
	var out []api.Run
	for _, r := range all {
		if before != "" && runPos(r) <= before || !keep(r) {
			continue
		}
		if len(out) == limit {
			return out, encodeContinue(runPos(out[len(out)-1])), nil
		}
		out = append(out, r)
	}
	return out, "", nil
}

// scan pages through a time-ordered index directory (entries <pos>),
// newest first, from the position before (exclusive; "" the newest) down
// to since (inclusive; zero: the oldest), in etcd's key order.
func (s *Store) scan(ctx context.Context, prefix string, since time.Time, before string, keep func(api.Run) bool, limit int) ([]api.Run, string, error) {
	start, end := prefix, clientv3.GetPrefixRangeEnd(prefix)
	if !since.IsZero() {
		end = prefix + sinceStamp(since) + "."
	}
	if before != "" {
		start = prefix + before + "\x00"
	}
	// etcd counts every key of a range it reads, however small the
	// limit: the reads go through windows of time that widen, from the
	// page's start, so that a page of the newest runs costs the same
	// with a million runs behind them as with ten.
	base := s.clock.Now()
	if before != "" {
		base = posTime(before)
	}
	window := time.Hour
	var out []api.Run
	batch := min(limit+1, scanBatch) // grows while a filter keeps few
	for scanned := 0; ; {
		stop := end
		if window > 0 {
			if w := prefix + sinceStamp(base.Add(-window)) + "."; w < end {
				stop = w
			}
		}
		tctx, cancel := context.WithTimeout(ctx, s.timeout)
		resp, err := s.c.Get(tctx, start, clientv3.WithRange(stop), clientv3.WithKeysOnly(), clientv3.WithLimit(int64(batch)))
		if err != nil {
			err = s.unavailable(tctx, err)
			cancel()
			return nil, "", err
		}
		cancel()
		poss := make([]string, 0, len(resp.Kvs))
		ids := make([]string, 0, len(resp.Kvs))
		for _, kv := range resp.Kvs {
			pos := strings.TrimPrefix(string(kv.Key), prefix)
			if id := posID(pos); id != "" {
				poss, ids = append(poss, pos), append(ids, id)
			}
		}
		// The records, a chunk at a time: a page reads no more of them
		// than it shows, and the one after.
		for i := 0; i < len(ids); {
			n := min(len(ids)-i, max(limit-len(out)+1, 16))
			found, _, err := s.getRuns(ctx, ids[i:i+n])
			if err != nil {
				return nil, "", err
			}
			byID := make(map[string]api.Run, len(found))
			for _, r := range found {
				byID[r.ID] = r
			}
			for j := i; j < i+n; j++ {
				r, ok := byID[ids[j]]
				if !ok || poss[j] != runPos(r) || !keep(r) {
					continue // gone, an entry left behind, or filtered out
				}
				if len(out) == limit {
					return out, encodeContinue(runPos(out[len(out)-1])), nil
				}
				out = append(out, r)
			}
			i += n
		}
		scanned += len(resp.Kvs)
		if len(resp.Kvs) > 0 {
			last := string(resp.Kvs[len(resp.Kvs)-1].Key)
			start = last + "\x00"
			if pos := strings.TrimPrefix(last, prefix); scanned >= maxScan && posID(pos) != "" {
				return out, encodeContinue(pos), nil
			}
		}
		switch {
		case resp.More:
			batch = min(4*batch, scanBatch)
		case stop == end:
			return out, "", nil
		case window >= 100*365*24*time.Hour:
			window = 0 // the rest, whatever is left
		default:
			window *= 8
		}
	}
}

// posTime is the creation time that a position names.
func posTime(pos string) time.Time {
	age, _ := strconv.ParseInt(pos[:stampDigits], 10, 64)
	return time.Unix(0, math.MaxInt64-age).UTC()
}

// builtRecord is the value of run-index/built/<site>.
type builtRecord struct {
	Version int `json:"version"`
}

// IndexRuns makes sure that the run index covers the run records written
// before it existed, or by sites of older versions: at a site's first
// start at this version, it reads every run record, a page at a time, and
// writes the entries each lacks, then marks the index built for the site
// (run-index/built/<site>). Later starts read the mark alone. Once the last
// site of a federation is upgraded, however one at a time, every record is
// indexed. It reports how many records it indexed.
func (s *Store) IndexRuns(ctx context.Context, site string) (int, error) {
	mark := s.key(runIndexBuilt, site)
	var built builtRecord
	err := s.get(ctx, mark, &built)
	if err == nil && built.Version >= runIndexVersion {
		return 0, nil
	}
	if err != nil && !errors.Is(err, errs.ErrNotFound) {
		return 0, err
	}
	const page, batch = 512, 16 // a batch's writes stay below etcd's 128 operations per transaction
	n, from := 0, s.prefix+runsDir
	end := clientv3.GetPrefixRangeEnd(from)
	for {
		tctx, cancel := context.WithTimeout(ctx, s.timeout)
		resp, err := s.c.Get(tctx, from, clientv3.WithRange(end), clientv3.WithLimit(page))
		if err != nil {
			err = s.unavailable(tctx, err)
			cancel()
			return n, fmt.Errorf("index the run records: %w", err)
		}
		cancel()
		for kvs := resp.Kvs; len(kvs) > 0; kvs = kvs[min(batch, len(kvs)):] {
			var conds []clientv3.Cmp
			var ops []op
			var runs []api.Run
			for _, kv := range kvs[:min(batch, len(kvs))] {
				var r api.Run
				if s.decode(string(kv.Key), kv.Value, kv.ModRevision, &r) != nil {
					continue
				}
				conds = append(conds, clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision))
				ops = append(ops, s.entryOps(r)...)
				runs = append(runs, r)
			}
			ops, err := s.absent(ctx, ops) // a site that indexed before wrote most
			if err != nil {
				return n, fmt.Errorf("index the run records: %w", err)
			}
			if len(ops) > 0 {
				err = s.txn(ctx, conds, ops...)
			}
			if errors.Is(err, errCondition) {
				// Some changed since: each again, as it is now.
				for _, r := range runs {
					if err = s.indexOne(ctx, r.ID); err != nil {
						break
					}
				}
			}
			if err != nil {
				return n, fmt.Errorf("index the run records: %w", err)
			}
			n += len(runs)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	if err := s.put(ctx, mark, builtRecord{Version: runIndexVersion}); err != nil {
		return n, fmt.Errorf("mark the run index built: %w", err)
	}
	return n, nil
}

// absent keeps the puts of ops whose keys do not exist yet (one read).
func (s *Store) absent(ctx context.Context, ops []op) ([]op, error) {
	if len(ops) == 0 {
		return nil, nil
	}
	gets := make([]clientv3.Op, len(ops))
	for i, o := range ops {
		gets[i] = clientv3.OpGet(o.key, clientv3.WithCountOnly())
	}
	tctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.c.Txn(tctx).Then(gets...).Commit()
	if err != nil {
		return nil, s.unavailable(tctx, err)
	}
	out := ops[:0]
	for i, r := range resp.Responses {
		if r.GetResponseRange().Count == 0 {
			out = append(out, ops[i])
		}
	}
	return out, nil
}

// entryOps are the puts of every index entry of r.
func (s *Store) entryOps(r api.Run) []op {
	var ops []op
	for _, key := range s.indexKeys(r) {
		if key != "" {
			ops = append(ops, op{key: key, v: indexEntry{Run: r.ID}})
		}
	}
	return ops
}

// indexOne writes the index entries of run id as its record is now (a
// compare-and-swap, read again while it changes); a record that is gone or
// invalid has none.
func (s *Store) indexOne(ctx context.Context, id string) error {
	key := s.key(runsDir, id)
	for {
		var r api.Run
		rev, err := s.getRev(ctx, key, &r)
		if errors.Is(err, errs.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		err = s.txn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", rev)}, s.entryOps(r)...)
		if !errors.Is(err, errCondition) {
			return err
		}
	}
}

// runRef is the value of a run index entry, as the check of every record
// reads it (its writers write an indexEntry, the same JSON).
type runRef indexEntry

// checkRunRef checks an index entry's run against its key's name,
// <index>/.../<entry>.
func checkRunRef(run, name string) error {
	dir, _, _ := strings.Cut(name, "/")
	i := slices.IndexFunc([]int{idxTime, idxTool, idxHeld, idxPush, idxManual}, func(i int) bool {
		return indexDir(i) == runIndexDir+dir+"/"
	})
	if i < 0 {
		return fmt.Errorf("%q is not a run index (time, tool, held, push or manual)", dir)
	}
	if id := entryID(i, name[strings.LastIndexByte(name, '/')+1:]); id == "" || id != run {
		return fmt.Errorf("its run is %q, not the one its key names", run)
	}
	return nil
}

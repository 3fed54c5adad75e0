package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/toolspec"
)

// The store's errors, of the kinds in package errs.
var (
	ErrNotFound    = errs.ErrNotFound
	ErrExists      = errs.ErrExists
	ErrInUse       = errs.ErrInUse
	ErrUnavailable = errs.New(errs.ErrUnavailable, "etcd unavailable")
)

// Key directories under the prefix; see docs/etcd-keys.md.
const (
	toolsDir    = "tools/"
	datasetsDir = "datasets/"
	runsDir     = "runs/"
	sitesDir    = "sites/"
)

// Store reads and writes mao's records in etcd.
type Store struct {
	c       *clientv3.Client
	prefix  string
	timeout time.Duration
}

// New returns a Store for keys under prefix (e.g. "/mao/"). Each etcd
// request is bounded by timeout, after which it fails with ErrUnavailable.
func New(c *clientv3.Client, prefix string, timeout time.Duration) *Store {
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	return &Store{c: c, prefix: prefix, timeout: timeout}
}

func (s *Store) key(dir, name string) string { return s.prefix + dir + name }

// CreateTool stores a new tool. It fails with ErrExists when the name is
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

// Tool returns the named tool or ErrNotFound.
func (s *Store) Tool(ctx context.Context, name string) (toolspec.Tool, error) {
	var t toolspec.Tool
	return t, wrapName(s.get(ctx, s.key(toolsDir, name), &t), "tool", name)
}

// Tools lists every tool, sorted by name.
func (s *Store) Tools(ctx context.Context) ([]toolspec.Tool, error) {
	tools, _, err := list[toolspec.Tool](ctx, s, toolsDir)
	return tools, err
}

// DeleteTool removes a tool; its runs stay.
func (s *Store) DeleteTool(ctx context.Context, name string) error {
	return wrapName(s.delete(ctx, s.key(toolsDir, name)), "tool", name)
}

// CreateDataset stores a new dataset or fails with ErrExists.
func (s *Store) CreateDataset(ctx context.Context, d toolspec.Dataset) error {
	return wrapName(s.create(ctx, s.key(datasetsDir, d.Name), d, nil), "dataset", d.Name)
}

// Dataset returns the named dataset or ErrNotFound.
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
// which case it fails with ErrInUse. The check and the delete are one
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
			return fmt.Errorf("dataset %s is the input of tool %s: %w", name, strings.Join(users, ", "), ErrInUse)
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
	return wrapName(s.create(ctx, s.key(runsDir, r.ID), r, nil), "run", r.ID)
}

// SaveRun overwrites an existing run record.
func (s *Store) SaveRun(ctx context.Context, r api.Run) error {
	return wrapName(s.put(ctx, s.key(runsDir, r.ID), r), "run", r.ID)
}

// Run returns one run record or ErrNotFound.
func (s *Store) Run(ctx context.Context, id string) (api.Run, error) {
	var r api.Run
	return r, wrapName(s.get(ctx, s.key(runsDir, id), &r), "run", id)
}

// Runs lists run records, newest first; a non-empty tool filters by tool.
func (s *Store) Runs(ctx context.Context, tool string) ([]api.Run, error) {
	runs, _, err := list[api.Run](ctx, s, runsDir)
	if err != nil {
		return nil, err
	}
	out := runs[:0]
	for _, r := range runs {
		if tool == "" || r.Tool == tool {
			out = append(out, r)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	return out, nil
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
		return ErrExists
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
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.c.Get(ctx, key)
	if err != nil {
		return s.unavailable(ctx, err)
	}
	if len(resp.Kvs) == 0 {
		return ErrNotFound
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, v); err != nil {
		return fmt.Errorf("decode %s: %w", key, err)
	}
	return nil
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
		return ErrNotFound
	}
	return errCondition
}

// list decodes every value under dir, in key order, and returns the store
// revision it read at.
func list[T any](ctx context.Context, s *Store, dir string) ([]T, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.c.Get(ctx, s.prefix+dir, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, 0, s.unavailable(ctx, err)
	}
	out := make([]T, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var v T
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			return nil, 0, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		out = append(out, v)
	}
	return out, resp.Header.Revision, nil
}

// unavailable turns a failed etcd request into ErrUnavailable, unless the
// caller's own context ended.
func (s *Store) unavailable(ctx context.Context, err error) error {
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
	case errors.Is(err, ErrNotFound):
		return fmt.Errorf("no %s named %q: %w", kind, name, err)
	case errors.Is(err, ErrExists):
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

package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/mao-research/mao/api"
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

// InvalidRecord is a key whose value the store refused, and why.
type InvalidRecord struct {
	Key    string
	Reason string
}

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

// InvalidRecords lists the records the store has refused since it
// started and that were not rewritten or deleted since, by key.
func (s *Store) InvalidRecords() []InvalidRecord {
	s.invalid.mu.Lock()
	defer s.invalid.mu.Unlock()
	out := make([]InvalidRecord, 0, len(s.invalid.got))
	for k, v := range s.invalid.got {
		out = append(out, InvalidRecord{Key: k, Reason: v.reason})
	}
	slices.SortFunc(out, func(a, b InvalidRecord) int { return strings.Compare(a.Key, b.Key) })
	return out
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
	case *api.Series:
		return sameName("tool/site/metric", r.Tool+"/"+r.Site+"/"+r.Metric, name,
			func() error { return errors.Join(toolspec.CheckName(r.Tool), toolspec.CheckName(r.Site)) })
	case *api.Notification:
		return sameName("id", r.ID, name, func() error { return nil })
	case *pki.JoinGrant:
		return sameName("id", r.ID, name, func() error { return toolspec.CheckName(r.Site) })
	case *indexEntry:
		return runs.CheckID(r.Run)
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
	return errors.Join(problems...)
}

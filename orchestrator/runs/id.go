package runs

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mao-research/mao/internal/randid"
	"github.com/mao-research/mao/toolspec"
)

// ID is a run's name, as its record and its etcd key carry it. Exactly one
// of Schedule and Tool is set.
type ID struct {
	Schedule string    // a schedule's tick: the schedule's ID
	Tool     string    // a run asked for by hand: the tool's name
	Time     time.Time // the tick, or when the run was asked for; whole seconds
	Nonce    string    // a run asked for by hand: 6 hex digits, so that two runs of one second differ
	Site     string    // one run of an --all target: the site it is for
}

// nonceDigits is the length of a manual run's nonce.
const nonceDigits = 6

// Manual is the ID of a run of tool asked for at now, with a fresh nonce
// (from crypto/rand).
func Manual(tool string, now time.Time) ID {
	return ID{Tool: tool, Time: now.UTC().Truncate(time.Second), Nonce: randid.Hex(nonceDigits / 2)}
}

// Tick is the ID of the run of schedule's tick.
func Tick(schedule string, tick time.Time) ID {
	return ID{Schedule: schedule, Time: tick.UTC().Truncate(time.Second)}
}

// For is the ID of the run of an --all target that site runs.
func (id ID) For(site string) ID {
	id.Site = site
	return id
}

// String formats the ID: <owner>-<unix seconds>[-<nonce>][-<site>].
func (id ID) String() string {
	var b strings.Builder
	b.WriteString(id.owner())
	b.WriteByte('-')
	b.WriteString(strconv.FormatInt(id.Time.Unix(), 10))
	if id.Nonce != "" {
		b.WriteByte('-')
		b.WriteString(id.Nonce)
	}
	if id.Site != "" {
		b.WriteByte('-')
		b.WriteString(id.Site)
	}
	return b.String()
}

func (id ID) owner() string {
	if id.Schedule != "" {
		return id.Schedule
	}
	return id.Tool
}

// Parse reads s as the ID of a tick of schedule, when schedule is set, or
// else of a run of tool asked for by hand. The owner must be given: names
// may hold '-' and digits, so an ID cannot be split without it.
func Parse(s, schedule, tool string) (ID, error) {
	id := ID{Schedule: schedule}
	if schedule == "" {
		id.Tool = tool
	}
	if id.owner() == "" {
		return ID{}, errors.New("parse run ID: no schedule or tool to parse it against")
	}
	rest, ok := strings.CutPrefix(s, id.owner()+"-")
	if !ok {
		return ID{}, fmt.Errorf("run ID %q does not start with %q", s, id.owner()+"-")
	}
	digits, rest, more := strings.Cut(rest, "-")
	secs, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || digits == "" || digits[0] == '+' || digits[0] == '-' || (digits[0] == '0' && len(digits) > 1) {
		return ID{}, fmt.Errorf("run ID %q: %q is not a time in Unix seconds", s, digits)
	}
	id.Time = time.Unix(secs, 0).UTC()
	if id.Tool != "" {
		nonce, after, found := strings.Cut(rest, "-")
		if len(nonce) != nonceDigits || !isHex(nonce) {
			return ID{}, fmt.Errorf("run ID %q: no nonce of %d hex digits after the time", s, nonceDigits)
		}
		id.Nonce, rest, more = nonce, after, found
	}
	if more {
		if err := toolspec.CheckName(rest); err != nil {
			return ID{}, fmt.Errorf("run ID %q: site %q: %w", s, rest, err)
		}
		id.Site = rest
	}
	return id, nil
}

func isHex(s string) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// CheckID checks that s can be a run's ID wherever one goes: an etcd key
// segment, a log file's name, a container's name. It does not parse it
// (that needs its owner): lowercase letters, digits, '.', '_' and '-',
// starting with a letter or digit, at most 255.
func CheckID(s string) error {
	if s == "" || len(s) > 255 {
		return fmt.Errorf("run ID %q: must have 1 to 255 characters", s)
	}
	for i, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || i > 0 && (c == '.' || c == '_' || c == '-')
		if !ok {
			return fmt.Errorf("run ID %q: %q is not a lowercase letter, digit, '.', '_' or '-' (nor the first character)", s, c)
		}
	}
	return nil
}

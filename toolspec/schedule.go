package toolspec

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule option values.
const (
	OverlapForbid = "forbid" // a tick while the previous run is unfinished is skipped
	OverlapAllow  = "allow"
	CatchupOnce   = "once" // after downtime, run the most recent missed tick once
	CatchupSkip   = "skip" // after downtime, run nothing; misses are recorded

	DefaultRetryDelay = time.Minute
)

// Schedule runs a tool at every tick of its timing. Its ticks are a pure
// function of the record, so every site computes the same scheduled times.
type Schedule struct {
	ID   string `json:"id"`
	Tool string `json:"tool"`
	// Spec is "daily", "weekly", "monthly", "@every <duration>" or a
	// five-field cron expression (descriptors such as "@hourly" work too).
	Spec    string `json:"spec"`
	At      string `json:"at,omitempty"`      // HH:MM for daily, weekly and monthly; default 00:00
	Weekday string `json:"weekday,omitempty"` // mon..sun for weekly; default mon
	TZ      string `json:"tz"`                // IANA time zone of the wall clock; set at creation

	Overlap    string            `json:"overlap"`               // forbid (default) or allow
	Catchup    string            `json:"catchup"`               // once (default) or skip
	Deadline   string            `json:"deadline,omitempty"`    // how late a catch-up may still start; empty: no limit
	Retries    int               `json:"retries,omitempty"`     // extra attempts after a failed one
	RetryDelay string            `json:"retry_delay,omitempty"` // default 1m
	Env        map[string]string `json:"env,omitempty"`         // added to the tool's env for these runs

	Paused    bool      `json:"paused,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// UpdatedAt is the last creation, edit or resume: ticks before it are
	// never caught up.
	UpdatedAt time.Time `json:"updated_at"`
}

// Timing yields a schedule's ticks.
type Timing interface {
	// Next returns the first tick strictly after t.
	Next(t time.Time) time.Time
}

var (
	atRe      = regexp.MustCompile(`^([01][0-9]|2[0-3]):([0-5][0-9])$`)
	weekdays  = []string{"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"}
	maxEnvLen = 64
)

// ApplyDefaults fills the optional fields that have defaults. tz is the
// site's default time zone.
func (s *Schedule) ApplyDefaults(tz string) {
	if s.TZ == "" {
		s.TZ = tz
	}
	if s.Overlap == "" {
		s.Overlap = OverlapForbid
	}
	if s.Catchup == "" {
		s.Catchup = CatchupOnce
	}
}

// Validate returns nil or a *ValidationError listing every problem. It
// expects ApplyDefaults to have run.
func (s *Schedule) Validate() error {
	p := &problems{kind: "schedule"}
	p.check("tool", CheckName(s.Tool))
	if _, err := s.Timing(); err != nil {
		var fe FieldError
		if errors.As(err, &fe) {
			p.add(fe.Field, "%s", fe.Problem)
		} else {
			p.check("spec", err)
		}
	}
	switch s.Overlap {
	case OverlapForbid, OverlapAllow:
	default:
		p.add("overlap", "%q is not forbid or allow", s.Overlap)
	}
	switch s.Catchup {
	case CatchupOnce, CatchupSkip:
	default:
		p.add("catchup", "%q is not once or skip", s.Catchup)
	}
	if s.Deadline != "" {
		_, err := checkDuration(s.Deadline)
		p.check("deadline", err)
	}
	if s.Retries < 0 || s.Retries > 100 {
		p.add("retries", "%d must be between 0 and 100", s.Retries)
	}
	if s.RetryDelay != "" {
		_, err := checkDuration(s.RetryDelay)
		p.check("retry_delay", err)
	}
	if len(s.Env) > maxEnvLen {
		p.add("env", "has %d variables; the limit is %d", len(s.Env), maxEnvLen)
	}
	for _, k := range sortedKeys(s.Env) {
		p.check("env."+k, checkEnvKey(k))
		p.check("env."+k, checkText(s.Env[k], maxLongText))
	}
	return p.err()
}

// Timing parses the schedule's spec in its time zone. Errors are
// FieldErrors naming the field at fault, with the parser's reason.
func (s *Schedule) Timing() (Timing, error) {
	loc, err := time.LoadLocation(s.TZ)
	if s.TZ == "" || s.TZ == "Local" {
		err = errors.New("a time zone is required")
	}
	if err != nil {
		return nil, FieldError{"tz", fmt.Sprintf("%q is not a time zone: %v", s.TZ, err)}
	}
	spec := strings.TrimSpace(s.Spec)
	calendar := spec == "daily" || spec == "weekly" || spec == "monthly"
	if !calendar && s.At != "" {
		return nil, FieldError{"at", "is only for daily, weekly and monthly schedules"}
	}
	if spec != "weekly" && s.Weekday != "" {
		return nil, FieldError{"weekday", "is only for weekly schedules"}
	}
	if every, ok := strings.CutPrefix(spec, "@every "); ok {
		return parseEvery(strings.TrimSpace(every))
	}
	if calendar {
		spec, err = s.calendarSpec(spec)
		if err != nil {
			return nil, err
		}
	}
	if spec == "" {
		return nil, FieldError{"spec", "is required: daily, weekly, monthly, @every <duration> or a cron expression"}
	}
	parsed, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, FieldError{"spec", fmt.Sprintf("%q: %v", s.Spec, err)}
	}
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		return nil, FieldError{"spec", "give the time zone in tz, not in the cron expression"}
	}
	return cronTiming{parsed, loc}, nil
}

// calendarSpec turns daily, weekly and monthly into cron expressions at
// the schedule's wall-clock time.
func (s *Schedule) calendarSpec(kind string) (string, error) {
	at := s.At
	if at == "" {
		at = "00:00"
	}
	m := atRe.FindStringSubmatch(at)
	if m == nil {
		return "", FieldError{"at", fmt.Sprintf("%q is not a time of day as HH:MM (00:00 to 23:59)", at)}
	}
	hour, minute := strings.TrimPrefix(m[1], "0"), strings.TrimPrefix(m[2], "0")
	hour, minute = orZero(hour), orZero(minute)
	switch kind {
	case "daily":
		return fmt.Sprintf("%s %s * * *", minute, hour), nil
	case "weekly":
		day := strings.ToLower(s.Weekday)
		if day == "" {
			day = "mon"
		}
		for i, d := range weekdays {
			if day == d || day == d[:3] {
				return fmt.Sprintf("%s %s * * %d", minute, hour, i), nil
			}
		}
		return "", FieldError{"weekday", fmt.Sprintf("%q is not a day of the week (mon, tue, ...)", s.Weekday)}
	default: // monthly: the first day of the month
		return fmt.Sprintf("%s %s 1 * *", minute, hour), nil
	}
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

// cronTiming follows a cron expression on the wall clock of loc.
type cronTiming struct {
	s   cron.Schedule
	loc *time.Location
}

func (c cronTiming) Next(t time.Time) time.Time { return c.s.Next(t.In(c.loc)).UTC() }

// parseEvery reads the duration of "@every <duration>".
func parseEvery(s string) (Timing, error) {
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return nil, FieldError{"spec", fmt.Sprintf("@every %q: %v", s, err)}
	case d < time.Second || d%time.Second != 0:
		return nil, FieldError{"spec", fmt.Sprintf("@every %s: want a whole number of seconds, at least 1s", s)}
	}
	return everyTiming(d), nil
}

// everyTiming ticks at every multiple of its period since the Unix epoch,
// so that the ticks do not depend on when or where they are computed.
type everyTiming time.Duration

func (e everyTiming) Next(t time.Time) time.Time {
	d := int64(e) / int64(time.Second)
	next := (floorDiv(t.Unix(), d) + 1) * d
	return time.Unix(next, 0).UTC()
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// Ticks returns the last keep ticks in (from, to], oldest first, and
// whether there are earlier ones in that interval too. It looks back over a
// window that grows until it holds keep ticks or reaches from, so its cost
// follows keep, not the length of the interval.
func Ticks(t Timing, from, to time.Time, keep int) (last []time.Time, more bool) {
	for window := time.Hour; ; window *= 4 {
		start := to.Add(-window)
		if !start.After(from) || window > 200*365*24*time.Hour {
			start = from
		}
		last = last[:0]
		for tick := t.Next(start); !tick.After(to); tick = t.Next(tick) {
			last = append(last, tick)
		}
		if len(last) >= keep || start.Equal(from) {
			if len(last) > keep {
				return last[len(last)-keep:], true
			}
			return last, len(last) == keep && !start.Equal(from) && t.Next(from).Before(last[0])
		}
	}
}

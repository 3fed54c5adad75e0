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
	// Target says which sites run the ticks: any one eligible site per
	// tick (the default), every eligible site, or one named site.
	Target Target `json:"target"`

	Paused    bool      `json:"paused,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// CreatedBy is the name of the API token that created the schedule
	// (never its secret); empty when the API needs no token.
	CreatedBy string `json:"created_by,omitempty"`
	// UpdatedAt is the last creation, edit, pause or resume: ticks before
	// it are never caught up.
	UpdatedAt time.Time `json:"updated_at"`
}

// Timing yields a schedule's ticks.
type Timing interface {
	// Next returns the first tick strictly after t.
	Next(t time.Time) time.Time
}

var atRe = regexp.MustCompile(`^([01][0-9]|2[0-3]):([0-5][0-9])$`)

const maxEnvLen = 64 // variables in a schedule's env

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
	if s.Target.Mode == "" {
		s.Target.Mode = TargetAny
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
	s.Target.check(p, "target")
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
	switch {
	case !calendar && s.At != "":
		return nil, FieldError{"at", "is only for daily, weekly and monthly schedules"}
	case spec != "weekly" && s.Weekday != "":
		return nil, FieldError{"weekday", "is only for weekly schedules"}
	case calendar:
		return s.calendar(spec, loc)
	case spec == "":
		return nil, FieldError{"spec", "is required: daily, weekly, monthly, @every <duration> or a cron expression"}
	case strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ="):
		return nil, FieldError{"spec", "give the time zone in tz, not in the cron expression"}
	}
	if every, ok := strings.CutPrefix(spec, "@every "); ok {
		return parseEvery(strings.TrimSpace(every))
	}
	parsed, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, FieldError{"spec", fmt.Sprintf("%q: %v", s.Spec, err)}
	}
	timing := cronTiming{parsed, loc}
	if timing.Next(time.Now()).IsZero() {
		return nil, FieldError{"spec", fmt.Sprintf("%q never matches a date", s.Spec)}
	}
	return timing, nil
}

// calendar reads daily, weekly and monthly schedules at their wall-clock
// time.
func (s *Schedule) calendar(kind string, loc *time.Location) (Timing, error) {
	at := s.At
	if at == "" {
		at = "00:00"
	}
	m := atRe.FindStringSubmatch(at)
	if m == nil {
		return nil, FieldError{"at", fmt.Sprintf("%q is not a time of day as HH:MM (00:00 to 23:59)", at)}
	}
	c := calendarTiming{weekday: -1, loc: loc}
	fmt.Sscanf(m[1]+" "+m[2], "%d %d", &c.hour, &c.minute)
	switch kind {
	case "weekly":
		day, ok := parseWeekday(s.Weekday)
		if !ok {
			return nil, FieldError{"weekday", fmt.Sprintf("%q is not a day of the week (mon, tue, ...)", s.Weekday)}
		}
		c.weekday = int(day)
	case "monthly":
		c.monthDay = 1
	}
	return c, nil
}

// parseWeekday reads a day of the week as its English name or its first
// three letters; empty is Monday.
func parseWeekday(s string) (time.Weekday, bool) {
	s = strings.ToLower(s)
	if s == "" {
		return time.Monday, true
	}
	for d := time.Sunday; d <= time.Saturday; d++ {
		name := strings.ToLower(d.String())
		if s == name || s == name[:3] {
			return d, true
		}
	}
	return 0, false
}

// calendarTiming ticks once a day (or on one weekday, or one day of the
// month) at a wall-clock time in loc: one tick per calendar day, always.
// When clocks spring forward over that time, the tick comes as much later
// as the clocks jumped; when they fall back over it, it comes once, at its
// second occurrence (Go's time.Date picks it).
type calendarTiming struct {
	hour, minute int
	weekday      int // -1: any
	monthDay     int // 0: any
	loc          *time.Location
}

func (c calendarTiming) Next(t time.Time) time.Time {
	local := t.In(c.loc)
	y, m, d := local.Date()
	for i := 0; i < 400; i++ { // a monthly tick is at most a month away
		day := time.Date(y, m, d+i, 0, 0, 0, 0, time.UTC) // the calendar date, free of zone rules
		if (c.weekday >= 0 && int(day.Weekday()) != c.weekday) || (c.monthDay > 0 && day.Day() != c.monthDay) {
			continue
		}
		tick := time.Date(day.Year(), day.Month(), day.Day(), c.hour, c.minute, 0, 0, c.loc)
		if tick.After(t) {
			return tick.UTC()
		}
	}
	return time.Time{}
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
// whether there are earlier ones in that interval too. A timing with no
// further tick (Next is zero) ends the walk. It looks back over a
// window that grows until it holds keep ticks or reaches from, so its cost
// follows keep, not the length of the interval.
func Ticks(t Timing, from, to time.Time, keep int) (last []time.Time, more bool) {
	for window := time.Hour; ; window *= 4 {
		start := to.Add(-window)
		if !start.After(from) || window > 200*365*24*time.Hour {
			start = from
		}
		last = last[:0]
		for tick := t.Next(start); !tick.IsZero() && !tick.After(to); tick = t.Next(tick) {
			last = append(last, tick)
		}
		if len(last) >= keep || start.Equal(from) {
			if len(last) > keep {
				return last[len(last)-keep:], true
			}
			return last, len(last) == keep && !start.Equal(from) && len(last) > 0 && t.Next(from).Before(last[0])
		}
	}
}

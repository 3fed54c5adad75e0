package maoctl

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
)

// normalizer makes transcripts the same on every run. It replaces only
// what is random by nature, each distinct value by a placeholder of the
// same width (the n-th distinct value becomes a zero-padded counter), so
// that table columns stay aligned:
//   - the random hex suffix of run IDs (<tool>-<unix>-<6 hex>), schedule IDs
//     (<tool>-<kind>-<4 hex>) and notification IDs (<unix nanos>-<6 hex>);
//   - the free loopback ports the case registered (addr);
//   - etcd member and cluster IDs that are random (randomMember): always
//     16 wide, see memberIDs;
//   - temporary directories: $TMP (the case's) and $TESTDIR (the test's
//     others), which only appear where no column follows;
//   - the site's own machine facts (CPUs, memory, OS, architecture) and
//     its instance (the random ID of its data directory);
//   - join tokens (maojoin1.<random ID and secret>), and the expiry of a
//     collaborator's certificate, which is signed at the real time;
//   - with docker, what the engine and the runs make: the test image's ID,
//     and git commits of the runs' output (a tool that marks its run
//     writes a file named after the run's ID, which is random).
//
// Values the case seeded are kept as they are, and so is everything the
// server decides (states, reasons, codes).
//
// It remembers its placeholders, so that a later command line can name a
// server-made ID by its placeholder (expand).
type normalizer struct {
	mu      sync.Mutex
	keep    map[string]bool              // seeded values, left alone
	named   []string                     // path, name pairs replaced first
	vars    map[string]string            // $NAME -> value, for command lines
	ports   map[string]string            // free port -> placeholder
	seen    map[string]map[string]string // kind -> value -> placeholder
	full    map[string][]string          // kind -> whole IDs, first seen first
	members map[string]bool              // etcd member and cluster IDs to replace
	own     map[string]bool              // real sites, whose machine facts are replaced
}

func newNormalizer() *normalizer {
	return &normalizer{keep: map[string]bool{}, vars: map[string]string{}, ports: map[string]string{},
		seen: map[string]map[string]string{}, full: map[string][]string{}, members: map[string]bool{}, own: map[string]bool{}}
}

// name replaces every occurrence of path by name, and name in command
// lines by path.
func (n *normalizer) name(path, name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.named = append(n.named, path, name)
	n.vars[name] = path
}

// addr registers a free loopback port (in a host:port), so that it is
// replaced by the next counter, and names the address for command lines.
func (n *normalizer) addr(hostport, name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, port, _ := strings.Cut(hostport, ":")
	if _, ok := n.ports[port]; !ok {
		n.ports[port] = fmt.Sprintf("%0*d", len(port), len(n.ports)+1)
	}
	if name != "" {
		n.vars[name] = hostport
	}
}

// setVar names value for command lines.
func (n *normalizer) setVar(name, value string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.vars[name] = value
}

// keepValue marks a seeded value (an ID, a hash) as fixed.
func (n *normalizer) keepValue(v string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.keep[v] = true
}

// randomMember marks an etcd member ID as random.
func (n *normalizer) randomMember(id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.members[id] = true
}

var (
	runIDRe      = regexp.MustCompile(`\b([a-z0-9][a-z0-9._-]*-\d{10})-([0-9a-f]{6})\b`)
	scheduleIDRe = regexp.MustCompile(`\b([a-z0-9][a-z0-9._-]*-(?:daily|weekly|monthly|every|cron))-([0-9a-f]{4})\b`)
	notifyIDRe   = regexp.MustCompile(`\b(\d{19})-([0-9a-f]{6})\b`)
	portRe       = regexp.MustCompile(`\b(127\.0\.0\.1|localhost):(\d+)\b`)
	hexRe        = regexp.MustCompile(`\b[0-9a-f]{12,16}\b`)
	joinTokenRe  = regexp.MustCompile(`\bmaojoin1\.[A-Za-z0-9_-]+`)
	readerUntil  = regexp.MustCompile(`(read-only, until )(\d{4}-\d\d-\d\dT[0-9:]+Z)`)
	// Values from the engine and the runs, in cases that really run
	// containers.
	commitRe  = regexp.MustCompile(`\b[0-9a-f]{40}\b`)
	imageIDRe = regexp.MustCompile(`sha256:[0-9a-f]{64}`)
)

// placeholder returns the placeholder of value of kind: the n-th distinct
// value of that kind as a counter of width digits.
func (n *normalizer) placeholder(kind, value string, width int) string {
	m := n.seen[kind]
	if m == nil {
		m = map[string]string{}
		n.seen[kind] = m
	}
	if p, ok := m[value]; ok {
		return p
	}
	p := fmt.Sprintf("%0*d", width, len(m)+1)
	m[value] = p
	return p
}

// normalize rewrites one command's output.
func (n *normalizer) normalize(s string, docker bool) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	s = strings.NewReplacer(n.named...).Replace(s)
	s = n.suffixes(s, runIDRe, "run")
	s = n.suffixes(s, scheduleIDRe, "schedule")
	s = n.suffixes(s, notifyIDRe, "notification")
	s = portRe.ReplaceAllStringFunc(s, func(m string) string {
		host, port, _ := strings.Cut(m, ":")
		if p, ok := n.ports[port]; ok {
			return host + ":" + p
		}
		return m
	})
	s = n.memberIDs(s)
	s = joinTokenRe.ReplaceAllStringFunc(s, func(m string) string {
		return "maojoin1.$TOKEN" + strings.TrimLeft(n.placeholder("join token", m, 1), "0")
	})
	s = readerUntil.ReplaceAllString(s, "${1}XXXX-XX-XXTXX:XX:XXZ")
	if docker {
		s = commitRe.ReplaceAllStringFunc(s, func(m string) string {
			if n.keep[m] {
				return m
			}
			return n.placeholder("commit", m, len(m))
		})
		s = imageIDRe.ReplaceAllStringFunc(s, func(m string) string {
			return "sha256:" + n.placeholder("image", m, 64)
		})
	}
	return n.machine(s)
}

// memberIDs replaces etcd member and cluster IDs that are random. Their
// hex form has no leading zeros, so it is 15 digits wide now and then: the
// placeholder is always 16 wide, and the table of federation status is
// aligned again for it (alignMembers).
func (n *normalizer) memberIDs(s string) string {
	s = hexRe.ReplaceAllStringFunc(s, func(id string) string {
		if !n.members[id] {
			return id
		}
		if _, ok := n.seen["member"][id]; !ok {
			n.full["member"] = append(n.full["member"], id)
		}
		return n.placeholder("member", id, 16)
	})
	return dbSizeRe.ReplaceAllString(alignMembers(s), `"$1": $$SIZE`)
}

// membersHeader is the header of federation status's table.
var membersHeader = regexp.MustCompile(`^NAME +ID +ROLE +PEER URLS +CLIENT URLS +LEADER +HEALTH +DB SIZE +ALARMS +VERSION$`)

// dbSizeRe is a member's database size in JSON, which depends on how
// etcd laid its pages out: it is replaced by $SIZE, and so is the DB SIZE
// column of federation status's table (alignMembers).
var dbSizeRe = regexp.MustCompile(`"(db_size|db_size_in_use)": \d+`)

// alignMembers lays out federation status's table again, as maoctl does
// (text/tabwriter, two spaces between columns), from its cells, which
// hold no two spaces in a row, with the DB SIZE cells replaced by $SIZE.
func alignMembers(s string) string {
	lines := strings.Split(s, "\n")
	for i := 0; i < len(lines); i++ {
		if !membersHeader.MatchString(lines[i]) {
			continue
		}
		end := i + 1
		for end < len(lines) && strings.TrimSpace(lines[end]) != "" {
			end++
		}
		var b strings.Builder
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		size := slices.Index(cellsRe.Split(lines[i], -1), "DB SIZE")
		for j, l := range lines[i:end] {
			cells := cellsRe.Split(l, -1)
			if j > 0 && size < len(cells) && cells[size] != "-" {
				cells[size] = "$SIZE"
			}
			fmt.Fprintln(tw, strings.Join(cells, "\t"))
		}
		tw.Flush()
		table := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
		for j := range table {
			table[j] = strings.TrimRight(table[j], " ")
		}
		lines = append(lines[:i], append(table, lines[end:]...)...)
		i = end - 1
	}
	return strings.Join(lines, "\n")
}

// cellsRe separates the cells of a table's line.
var cellsRe = regexp.MustCompile(` {2,}`)

// suffixes replaces the random hex suffix of the IDs re matches, unless
// the ID was seeded.
func (n *normalizer) suffixes(s string, re *regexp.Regexp, kind string) string {
	return re.ReplaceAllStringFunc(s, func(m string) string {
		if n.keep[m] {
			return m
		}
		sub := re.FindStringSubmatch(m)
		if _, ok := n.seen[kind][sub[2]]; !ok {
			n.full[kind] = append(n.full[kind], m)
		}
		return sub[1] + "-" + n.placeholder(kind, sub[2], len(sub[2]))
	})
}

// machineKeys are the fields of a site's record that describe the machine
// the test runs on, in JSON and in site show.
var machineKeys = regexp.MustCompile(`^(\s*"(?:os|arch|cpus|memory_bytes)": |(?:Platform|CPUs|Memory):\s+)(.*?)(,?)$`)

// instanceKey is the site's instance (the random ID of its data
// directory) in JSON site records.
var instanceKey = regexp.MustCompile(`^(\s*"instance": )(.*?)(,?)$`)

// machine replaces the machine facts of the case's own site (its CPUs,
// memory, OS and architecture, which the site reads from the machine)
// by X's, in site show and in JSON site records, and its instance in JSON
// site records. Other sites' records are seeded and kept.
func (n *normalizer) machine(s string) string {
	if len(n.own) == 0 {
		return s
	}
	lines := strings.Split(s, "\n")
	current := ""
	for i, l := range lines {
		trimmed := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(trimmed, `"name": `):
			current = strings.Trim(strings.TrimSuffix(strings.TrimPrefix(trimmed, `"name": `), ","), `"`)
		case strings.HasPrefix(trimmed, "Site:"):
			current = strings.TrimSpace(strings.TrimPrefix(trimmed, "Site:"))
		}
		if !n.own[current] {
			continue
		}
		if m := machineKeys.FindStringSubmatch(l); m != nil {
			lines[i] = m[1] + "$MACHINE" + m[3]
		}
		if m := instanceKey.FindStringSubmatch(l); m != nil {
			lines[i] = m[1] + "$INSTANCE" + m[3]
		}
	}
	return strings.Join(lines, "\n")
}

// refRe are references in command lines to IDs the orchestrator made:
// $RUN1 is the first run ID seen in the case's output.
var (
	refRe = regexp.MustCompile(`\$(RUN|SCHED)(\d+)`)
	varRe = regexp.MustCompile(`\$[A-Z][A-Z0-9_]*`)
)

// expand turns names and references in a command line argument into the
// values they stand for.
func (n *normalizer) expand(arg string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	arg = refRe.ReplaceAllStringFunc(arg, func(m string) string {
		sub := refRe.FindStringSubmatch(m)
		kind := map[string]string{"RUN": "run", "SCHED": "schedule"}[sub[1]]
		var i int
		fmt.Sscan(sub[2], &i)
		if i < 1 || i > len(n.full[kind]) {
			return m
		}
		return n.full[kind][i-1]
	})
	arg = varRe.ReplaceAllStringFunc(arg, func(m string) string {
		if v, ok := n.vars[m]; ok {
			return v
		}
		return m
	})
	back := func(re *regexp.Regexp, kind string) {
		arg = re.ReplaceAllStringFunc(arg, func(m string) string {
			sub := re.FindStringSubmatch(m)
			for v, p := range n.seen[kind] {
				if p == sub[2] {
					return sub[1] + "-" + v
				}
			}
			return m
		})
	}
	back(runIDRe, "run")
	back(scheduleIDRe, "schedule")
	return arg
}

// TestNormalizeMemberIDs checks that federation status's table comes out
// the same whether a random member ID is 16 hex digits wide or, without
// its leading zero, 15, with the database sizes replaced.
func TestNormalizeMemberIDs(t *testing.T) {
	table := func(id string) string {
		var b strings.Builder
		tab := newTable(&b, "NAME", "ID", "ROLE", "PEER URLS", "CLIENT URLS", "LEADER", "HEALTH", "DB SIZE", "ALARMS", "VERSION")
		tab.row("", id, "learner", "http://127.0.0.1:9", "", "", "not started", "", "", "")
		tab.row("lab-a", "18872ab49415b7e4", "voter", "http://127.0.0.1:0", "http://127.0.0.1:0", "*", "ok", "25 kB", "", "3.7.3")
		if err := tab.flush(); err != nil {
			t.Fatal(err)
		}
		return "Cluster:  " + id + "\n\n" + b.String()
	}
	var got []string
	for _, id := range []string{"a1b2c3d4e5f60718", "1b2c3d4e5f60718"} {
		n := newNormalizer()
		n.randomMember(id)
		n.randomMember("18872ab49415b7e4")
		got = append(got, n.normalize(table(id), false))
	}
	if got[0] != got[1] {
		t.Errorf("a 16-digit ID gives\n%s\na 15-digit one\n%s", got[0], got[1])
	}
	if !strings.Contains(got[0], "-      0000000000000001  learner  http://127.0.0.1:9") ||
		!strings.Contains(got[0], "ok           $SIZE    -       3.7.3") {
		t.Errorf("the table is not aligned for 16-digit placeholders, or shows a database size:\n%s", got[0])
	}
}

package toolspec

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// Target modes: where a run or a schedule's ticks run.
const (
	TargetSite = "site" // exactly the named site
	TargetAny  = "any"  // one live eligible site (per tick, for a schedule)
	TargetAll  = "all"  // every live eligible site, once each
)

// Target says which sites may run a run or a schedule's ticks. A site is
// eligible when it is live, carries every label in Labels, and has the
// tool's image or can pull it. The zero Target is TargetAny.
type Target struct {
	Mode   string            `json:"mode,omitempty"`   // TargetSite, TargetAny (default) or TargetAll
	Site   string            `json:"site,omitempty"`   // for TargetSite
	Labels map[string]string `json:"labels,omitempty"` // eligible sites carry all of these
}

// labelKeyRe is what a label key may look like: like a name, but case
// is kept, as sites write it in config.ini.
var labelKeyRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$`)

// EffectiveMode is Mode with its default filled in.
func (t Target) EffectiveMode() string {
	if t.Mode == "" {
		return TargetAny
	}
	return t.Mode
}

// Matches reports whether a site with labels carries every label the
// target asks for.
func (t Target) Matches(labels map[string]string) bool {
	for k, v := range t.Labels {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// Allows reports whether site, with its labels, is one the target may run
// at (leaving aside whether it is live and has the image).
func (t Target) Allows(site string, labels map[string]string) bool {
	if t.EffectiveMode() == TargetSite && t.Site != site {
		return false
	}
	return t.Matches(labels)
}

// String is the target in the words of maoctl's flags, e.g. "any",
// "site b", "all gpu=true".
func (t Target) String() string {
	s := t.EffectiveMode()
	if s == TargetSite {
		s += " " + t.Site
	}
	for _, k := range slices.Sorted(maps.Keys(t.Labels)) {
		s += " " + k + "=" + t.Labels[k]
	}
	return s
}

// check adds the target's problems to p, naming fields under prefix.
func (t Target) check(p *problems, prefix string) {
	switch t.EffectiveMode() {
	case TargetSite:
		p.check(prefix+".site", CheckName(t.Site))
	case TargetAny, TargetAll:
		if t.Site != "" {
			p.add(prefix+".site", "is only for mode site, not %s", t.Mode)
		}
	default:
		p.add(prefix+".mode", "%q is not site, any or all", t.Mode)
	}
	for _, k := range sortedKeys(t.Labels) {
		if !labelKeyRe.MatchString(k) {
			p.add(prefix+".labels."+k, "%q is not a label key (letters, digits, '.', '_', '/', '-')", k)
		}
		p.check(prefix+".labels."+k, checkLine(t.Labels[k], maxShortText))
	}
}

// Validate returns nil or a *ValidationError listing every problem with
// the target.
func (t Target) Validate() error {
	p := &problems{kind: "target"}
	t.check(p, "target")
	return p.err()
}

// ParseLabels reads labels given as "key=value" strings, as maoctl's
// --label flags and config.ini's labels give them.
func ParseLabels(pairs []string) (map[string]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(pairs))
	for _, kv := range pairs {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" {
			return nil, fmt.Errorf("label %q: want key=value", kv)
		}
		if !labelKeyRe.MatchString(k) {
			return nil, fmt.Errorf("label %q: %q is not a label key (letters, digits, '.', '_', '/', '-')", kv, k)
		}
		out[k] = v
	}
	return out, nil
}

package toolspec

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/mao-research/mao/detector"
)

// Defaults for optional Tool fields.
const (
	DefaultTimeout = time.Hour
	DefaultNetwork = "bridge"
)

// Paths inside the container, fixed by the MAO tool contract.
const (
	DataMount  = "/usr/src/app/data"  // the tool's data repository clone, read-write
	InputMount = "/usr/src/app/input" // the input dataset clone, read-only
)

// Tool is a registered tool: a Docker image that runs non-interactively and
// writes its output into DataMount.
//
// The first six fields are the predecessor's registry record and keep its
// JSON names; the rest are optional.
type Tool struct {
	Name     string `json:"name" yaml:"name"`
	Author   string `json:"author" yaml:"author"`
	Image    string `json:"image" yaml:"image"`
	DataRepo string `json:"data_repo" yaml:"data_repo"`
	CodeRepo string `json:"code_repo" yaml:"code_repo"`
	Artefact string `json:"artefact" yaml:"artefact"`

	Description string            `json:"description,omitempty" yaml:"description,omitempty"`
	Command     []string          `json:"command,omitempty" yaml:"command,omitempty"`
	Env         map[string]string `json:"env,omitempty" yaml:"env,omitempty"`
	// SecretEnv names the keys of Env (or of a schedule's env) whose
	// values are secrets: a run's provenance keeps them as "***".
	SecretEnv    []string   `json:"secret_env,omitempty" yaml:"secret_env,omitempty"`
	InputDataset string     `json:"input_dataset,omitempty" yaml:"input_dataset,omitempty"`
	Timeout      string     `json:"timeout,omitempty" yaml:"timeout,omitempty"` // Go duration; default 1h
	Resources    *Resources `json:"resources,omitempty" yaml:"resources,omitempty"`
	Network      string     `json:"network,omitempty" yaml:"network,omitempty"` // default "bridge"
	// User is "UID" or "UID:GID", numeric, that the container runs as;
	// empty: the image's user (see docs/etcd-keys.md for what a site does
	// with it).
	User string `json:"user,omitempty" yaml:"user,omitempty"`

	// Detector says where each run's metric is and how spikes are found;
	// absent: the MAO contract (the newest control-*.csv the run wrote)
	// with the mad method's defaults.
	Detector *detector.Config `json:"detector,omitempty" yaml:"detector,omitempty"`
	// Notify are shoutrrr URLs of channels told about this tool's
	// events, besides the site's. They hold secrets: the API and maoctl
	// show them redacted.
	Notify []string `json:"notify,omitempty" yaml:"notify,omitempty"`

	// Branch is the data repository's branch that runs work on and push
	// to; empty: the repository's default branch.
	Branch string `json:"branch,omitempty" yaml:"branch,omitempty"`
	// Push says where a successful run's commit goes: PushBranch (the
	// default: Branch), PushSiteBranch (mao/<site>, each site's own) or
	// PushOff (it stays in the site's clone).
	Push string `json:"push,omitempty" yaml:"push,omitempty"`
	// Revision is the etcd revision of the record the tool was read from,
	// set by the store; it is not part of the record.
	Revision int64 `json:"-" yaml:"-"`
}

// The values of Tool.Push.
const (
	PushBranch     = "branch"
	PushSiteBranch = "site-branch"
	PushOff        = "off"
)

// SiteBranch is the branch of site in a data repository: where push
// site-branch sends its runs' commits, and where push branch sends a
// commit that conflicts with the branch.
func SiteBranch(site string) string { return "mao/" + site }

// PushMode is Push, PushBranch when unset.
func (t *Tool) PushMode() string {
	if t.Push == "" {
		return PushBranch
	}
	return t.Push
}

// CheckChannelURL reports whether u looks like a shoutrrr channel URL. Its
// error never quotes u, which holds secrets.
func CheckChannelURL(u string) error {
	if parsed, err := url.Parse(u); err != nil || parsed.Scheme == "" || len(u) > maxLongText {
		return errors.New("is not a channel URL such as slack://..., smtp://... or generic://...")
	}
	return nil
}

// maxSecretEnv bounds a tool's secret_env list.
const maxSecretEnv = 64

// maxChannels bounds a tool's notify list.
const maxChannels = 16

// Resources are the limits applied to a tool's container.
type Resources struct {
	CPUs   float64 `json:"cpus,omitempty" yaml:"cpus,omitempty"`     // e.g. 1.5; 0 means no limit
	Memory string  `json:"memory,omitempty" yaml:"memory,omitempty"` // e.g. "512MiB"; empty means no limit
}

// Validate returns nil or a *ValidationError listing every problem.
func (t *Tool) Validate() error {
	p := &problems{kind: "tool"}
	p.check("name", CheckName(t.Name))
	if t.Author == "" {
		p.add("author", "is required")
	}
	p.check("author", checkLine(t.Author, maxShortText))
	p.check("image", checkImage(t.Image))
	p.check("data_repo", checkGitURL(t.DataRepo))
	if t.CodeRepo != "" {
		p.check("code_repo", checkLinkURL(t.CodeRepo))
	}
	p.check("artefact", checkLine(t.Artefact, maxShortText))
	p.check("description", checkText(t.Description, maxLongText))
	if t.InputDataset != "" {
		p.check("input_dataset", CheckName(t.InputDataset))
	}
	if t.Detector != nil {
		for _, pr := range t.Detector.Problems() {
			p.add("detector."+pr.Field, "%s", pr.Problem)
		}
	}
	if len(t.Notify) > maxChannels {
		p.add("notify", "has %d channels; the limit is %d", len(t.Notify), maxChannels)
	}
	for i, u := range t.Notify {
		p.check(fmt.Sprintf("notify[%d]", i), CheckChannelURL(u))
	}
	if t.Branch != "" {
		p.check("branch", CheckBranch(t.Branch))
		if strings.HasPrefix(t.Branch, "mao/") {
			p.add("branch", "%q: branches under mao/ are the sites' own (push: site-branch, and conflicts)", t.Branch)
		}
	}
	switch t.Push {
	case "", PushBranch, PushSiteBranch, PushOff:
	default:
		p.add("push", "%q is not one of %s, %s, %s", t.Push, PushBranch, PushSiteBranch, PushOff)
	}
	t.checkExecution(p)
	return p.err()
}

// ValidateExecution checks only how the tool's container runs (command,
// env, secret_env, timeout, resources, network, user): what a run's
// snapshot of it holds. It returns nil or a *ValidationError of kind kind.
func (t *Tool) ValidateExecution(kind string) error {
	p := &problems{kind: kind}
	t.checkExecution(p)
	return p.err()
}

// checkExecution adds the problems of how the tool's container runs.
func (t *Tool) checkExecution(p *problems) {
	for i, arg := range t.Command {
		p.check(fmt.Sprintf("command[%d]", i), checkText(arg, maxLongText))
	}
	for _, k := range sortedKeys(t.Env) {
		field := "env." + k
		p.check(field, checkEnvKey(k))
		p.check(field, checkText(t.Env[k], maxLongText))
	}
	if len(t.SecretEnv) > maxSecretEnv {
		p.add("secret_env", "has %d keys; the limit is %d", len(t.SecretEnv), maxSecretEnv)
	}
	for i, k := range t.SecretEnv {
		p.check(fmt.Sprintf("secret_env[%d]", i), checkEnvKey(k))
	}
	if t.Timeout != "" {
		_, err := checkDuration(t.Timeout)
		p.check("timeout", err)
	}
	if r := t.Resources; r != nil {
		if r.CPUs < 0 || r.CPUs > 1024 {
			p.add("resources.cpus", "%v must be between 0 and 1024", r.CPUs)
		}
		if r.Memory != "" {
			_, err := ParseMemory(r.Memory)
			p.check("resources.memory", err)
		}
	}
	if t.Network != "" {
		p.check("network", checkNetwork(t.Network))
	}
	if t.User != "" {
		_, _, err := parseUser(t.User)
		p.check("user", err)
	}
}

// TimeoutDuration is the run time limit, DefaultTimeout when unset.
// It assumes Validate passed.
func (t *Tool) TimeoutDuration() time.Duration {
	if d, err := time.ParseDuration(t.Timeout); err == nil && d > 0 {
		return d
	}
	return DefaultTimeout
}

// NetworkName is the container network, DefaultNetwork when unset.
func (t *Tool) NetworkName() string {
	if t.Network == "" {
		return DefaultNetwork
	}
	return t.Network
}

// UserIDs are the uid and gid of User; gid is -1 when User names none, and
// ok is false when User is empty. It assumes Validate passed.
func (t *Tool) UserIDs() (uid, gid int, ok bool) {
	if t.User == "" {
		return 0, -1, false
	}
	uid, gid, err := parseUser(t.User)
	return uid, gid, err == nil
}

// MemoryBytes is the memory limit in bytes, 0 for none. It assumes Validate
// passed.
func (t *Tool) MemoryBytes() int64 {
	if t.Resources == nil || t.Resources.Memory == "" {
		return 0
	}
	n, _ := ParseMemory(t.Resources.Memory)
	return n
}

// CPUs is the CPU limit, 0 for none.
func (t *Tool) CPUs() float64 {
	if t.Resources == nil {
		return 0
	}
	return t.Resources.CPUs
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// SecretMask stands for a secret value where a record keeps what ran.
const SecretMask = "***"

// MaskSecrets returns a copy of env with the values of the keys the tool
// lists in SecretEnv replaced by SecretMask.
func (t *Tool) MaskSecrets(env map[string]string) map[string]string {
	if env == nil {
		return nil
	}
	out := make(map[string]string, len(env))
	for k, v := range env {
		if slices.Contains(t.SecretEnv, k) {
			v = SecretMask
		}
		out[k] = v
	}
	return out
}

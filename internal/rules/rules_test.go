package rules

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
)

// module is this module's path; package paths below are relative to it.
const module = "github.com/mao-research/mao"

// pkg is a package as `go list` describes it, without its tests.
type pkg struct {
	ImportPath string
	Name       string
	Dir        string
	GoFiles    []string
	Imports    []string
	Deps       []string
}

// rel is a path of this module relative to it ("" for others).
func rel(path string) string {
	if path == module {
		return "."
	}
	r, ok := strings.CutPrefix(path, module+"/")
	if !ok {
		return ""
	}
	return r
}

// listed is `go list`'s answer, read once for every test.
var listed struct {
	once sync.Once
	pkgs map[string]pkg
	err  error
}

// listPackages runs `go list -json ./...` at the module's root, once.
func listPackages(t *testing.T) map[string]pkg {
	t.Helper()
	listed.once.Do(func() { listed.pkgs, listed.err = goList() })
	if listed.err != nil {
		t.Fatal(listed.err)
	}
	return listed.pkgs
}

func goList() (map[string]pkg, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(goBin, "list", "-json", "./...")
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %v\n%s", err, stderr.String())
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			return nil, err
		}
		pkgs[rel(p.ImportPath)] = p
	}
	return pkgs, nil
}

// rule is what one package's doc.go says of its imports.
type rule struct {
	imports    []string // may import directly, of this module; nil: no rule
	hasImports bool
	never      []string // tokens that must not be among its dependencies
	importedBy []string // the only importers; nil with hasBy: tests only
	hasBy      bool
}

var ruleLine = regexp.MustCompile(`^(Imports from mao|Never links|Imported by):\s*(.*?)\.?$`)

// readRule parses the "# Rules" section of the package doc in dir/doc.go.
func readRule(dir string) (rule, error) {
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, "doc.go"), nil, parser.ParseComments|parser.PackageClauseOnly)
	if err != nil {
		return rule{}, err
	}
	if f.Doc == nil {
		return rule{}, errors.New("doc.go has no package comment")
	}
	_, section, ok := strings.Cut(f.Doc.Text(), "# Rules\n")
	if !ok {
		return rule{}, errors.New(`doc.go has no "# Rules" section`)
	}
	var r rule
	sc := bufio.NewScanner(strings.NewReader(section))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		m := ruleLine.FindStringSubmatch(line)
		if m == nil {
			return rule{}, fmt.Errorf("rules: %q is not a rule line", line)
		}
		var err error
		switch m[1] {
		case "Imports from mao":
			r.hasImports = true
			r.imports, err = onlyList(line, m[2], "nothing")
		case "Never links":
			r.never = split(m[2])
		case "Imported by":
			r.hasBy = true
			r.importedBy, err = onlyList(line, m[2], "tests only")
		}
		if err != nil {
			return rule{}, err
		}
	}
	if !r.hasImports {
		return rule{}, errors.New(`rules: no "Imports from mao:" line`)
	}
	return r, nil
}

// onlyList reads a rule's value: "only a, b", or none, which means no
// package (nil).
func onlyList(line, value, none string) ([]string, error) {
	if value == none {
		return nil, nil
	}
	list, ok := strings.CutPrefix(value, "only ")
	if !ok {
		return nil, fmt.Errorf(`rules: %q: say "only ..." or %q`, line, none)
	}
	return split(list), nil
}

func split(list string) []string {
	var out []string
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// external names what Never links may forbid, by import path prefix.
var external = map[string][]string{
	"etcd":     {"go.etcd.io/etcd/"},
	"Docker":   {"github.com/docker/docker/"},
	"go-git":   {"github.com/go-git/go-git/"},
	"gocron":   {"github.com/go-co-op/gocron/"},
	"shoutrrr": {"github.com/nicholas-fedor/shoutrrr"},
}

// forbids reports whether token forbids dep for the package self; known
// lists the packages of this module.
func forbids(token, self, dep string, known map[string]pkg) (bool, error) {
	switch {
	case token == "net/http":
		return dep == "net/http", nil
	case token == "orchestrator":
		r := rel(dep)
		return strings.HasPrefix(r, "orchestrator/") && r != self, nil
	case external[token] != nil:
		for _, prefix := range external[token] {
			if strings.HasPrefix(dep, prefix) {
				return true, nil
			}
		}
		return false, nil
	case known[token].ImportPath != "":
		return rel(dep) == token, nil
	}
	return false, fmt.Errorf("Never links: %q is not a known name", token)
}

// needsRules reports whether a package must state its rules: every
// package with Go code, but the commands of bench/, examples/ and the
// test tools under internal/.
func needsRules(p pkg) bool {
	if len(p.GoFiles) == 0 && !hasDoc(p.Dir) {
		return false
	}
	r := rel(p.ImportPath)
	if p.Name == "main" && (strings.HasPrefix(r, "bench/") || strings.HasPrefix(r, "examples/") || strings.HasPrefix(r, "internal/")) {
		return false
	}
	return true
}

func hasDoc(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "doc.go"))
	return err == nil
}

// check returns every way the packages break their rules.
func check(pkgs map[string]pkg, rules map[string]rule) []string {
	var problems []string
	importers := map[string][]string{}
	for name, p := range pkgs {
		for _, imp := range p.Imports {
			if r := rel(imp); r != "" {
				importers[r] = append(importers[r], name)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(rules)) {
		r, p := rules[name], pkgs[name]
		for _, listedName := range append(slices.Clone(r.imports), r.importedBy...) {
			if pkgs[listedName].ImportPath == "" {
				problems = append(problems, fmt.Sprintf("%s: its rules name %s, which is not a package of this module", name, listedName))
			}
		}
		for _, imp := range p.Imports {
			if dep := rel(imp); dep != "" && !slices.Contains(r.imports, dep) {
				problems = append(problems, fmt.Sprintf("%s imports %s, which its doc.go does not allow (Imports from mao)", name, dep))
			}
		}
		for _, token := range r.never {
			if _, err := forbids(token, name, "", pkgs); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", name, err))
				continue
			}
			for _, dep := range p.Deps {
				bad, err := forbids(token, name, dep, pkgs)
				if err != nil {
					problems = append(problems, fmt.Sprintf("%s: %v", name, err))
					break
				}
				if bad {
					problems = append(problems, fmt.Sprintf("%s links %s (%s), which its doc.go forbids (Never links); %s",
						name, dep, token, chain(pkgs, p, dep)))
					break
				}
			}
		}
		if r.hasBy {
			for _, importer := range importers[name] {
				if !slices.Contains(r.importedBy, importer) {
					problems = append(problems, fmt.Sprintf("%s is imported by %s, which its doc.go does not allow (Imported by)", name, importer))
				}
			}
		}
	}
	return problems
}

// chain explains how p comes to link dep: the shortest path of imports
// through this module's packages to the one that brings dep in.
func chain(pkgs map[string]pkg, p pkg, dep string) string {
	byPath := map[string]pkg{}
	for _, q := range pkgs {
		byPath[q.ImportPath] = q
	}
	type step struct {
		q   pkg
		via []string
	}
	seen := map[string]bool{p.ImportPath: true}
	queue := []step{{p, []string{rel(p.ImportPath)}}}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		inside := false // a package of this module among s's imports links dep
		for _, imp := range s.q.Imports {
			q, ours := byPath[imp]
			if !ours || (imp != dep && !slices.Contains(q.Deps, dep)) {
				continue
			}
			inside = true
			if !seen[imp] {
				seen[imp] = true
				queue = append(queue, step{q, append(slices.Clone(s.via), rel(imp))})
			}
		}
		if !inside {
			return "through " + strings.Join(append(s.via, dep), " → ")
		}
	}
	return "through " + rel(p.ImportPath)
}

// readRules reads the rules of every package that needs them.
func readRules(t *testing.T, pkgs map[string]pkg) map[string]rule {
	t.Helper()
	rules := map[string]rule{}
	for name, p := range pkgs {
		if !needsRules(p) {
			continue
		}
		r, err := readRule(p.Dir)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		rules[name] = r
	}
	return rules
}

// TestImportRules checks every package's doc.go rules against `go list`.
func TestImportRules(t *testing.T) {
	pkgs := listPackages(t)
	rules := readRules(t, pkgs)
	if len(rules) < 20 {
		t.Fatalf("read the rules of %d packages; the module has more", len(rules))
	}
	for _, p := range check(pkgs, rules) {
		t.Error(p)
	}
}

// TestArchitectureMap checks the map in docs/architecture.md: one line
// per package, "<package> → <the packages of this module it imports>",
// exactly as `go list` has them.
func TestArchitectureMap(t *testing.T) {
	pkgs := listPackages(t)
	rules := readRules(t, pkgs)
	doc, err := os.ReadFile("../../docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	drawn, err := readMap(string(doc))
	if err != nil {
		t.Fatal(err)
	}
	for name := range rules {
		p := pkgs[name]
		var actual []string
		for _, imp := range p.Imports {
			if r := rel(imp); r != "" {
				actual = append(actual, r)
			}
		}
		slices.Sort(actual)
		got, ok := drawn[name]
		switch {
		case !ok:
			t.Errorf("the map leaves out %s → %s", name, strings.Join(actual, ", "))
		case !slices.Equal(got, actual):
			t.Errorf("the map has %s → %s; the code has %s", name, strings.Join(got, ", "), strings.Join(actual, ", "))
		}
	}
	for name := range drawn {
		if _, ok := rules[name]; !ok {
			t.Errorf("the map shows %s, which is not a package with rules", name)
		}
	}
}

// readMap reads the fenced block after "## Map" in architecture.md.
func readMap(doc string) (map[string][]string, error) {
	_, after, ok := strings.Cut(doc, "\n## Map\n")
	if !ok {
		return nil, errors.New(`docs/architecture.md has no "## Map" section`)
	}
	_, after, ok = strings.Cut(after, "```text\n")
	if !ok {
		return nil, errors.New("the Map section has no ```text block")
	}
	block, _, _ := strings.Cut(after, "```")
	out := map[string][]string{}
	for _, line := range strings.Split(block, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		from, to, ok := strings.Cut(line, "→")
		if !ok {
			return nil, fmt.Errorf("map line %q has no →", line)
		}
		deps := []string{}
		if to = strings.TrimSpace(to); to != "(nothing)" {
			deps = split(to)
		}
		slices.Sort(deps)
		out[strings.TrimSpace(from)] = deps
	}
	return out, nil
}

// TestTheRulesCatchABreach checks that the checks fail when a package
// breaks its rules: an import the rules do not allow, a forbidden link,
// an importer that is not allowed, and an unknown name.
func TestTheRulesCatchABreach(t *testing.T) {
	pkgs := map[string]pkg{
		"leaf":       {ImportPath: module + "/leaf", Imports: []string{"fmt"}, Deps: []string{"fmt"}},
		"room":       {ImportPath: module + "/room", Imports: []string{module + "/leaf", "go.etcd.io/etcd/client/v3"}, Deps: []string{module + "/leaf", "go.etcd.io/etcd/client/v3"}},
		"other":      {ImportPath: module + "/other", Imports: []string{module + "/leaf"}, Deps: []string{module + "/leaf"}},
		"consumer":   {ImportPath: module + "/consumer", Imports: []string{module + "/room"}, Deps: []string{module + "/room", module + "/leaf", "go.etcd.io/etcd/client/v3"}},
		"typo-maker": {ImportPath: module + "/typo-maker"},
	}
	rules := map[string]rule{
		"leaf":       {hasImports: true, hasBy: true, importedBy: []string{"room"}},
		"room":       {hasImports: true, imports: []string{"leaf"}, never: []string{"Docker"}},
		"other":      {hasImports: true, imports: []string{"lef"}},
		"consumer":   {hasImports: true, imports: []string{"room"}, never: []string{"etcd"}},
		"typo-maker": {hasImports: true, never: []string{"Dokcer"}},
	}
	got := check(pkgs, rules)
	want := []string{
		"consumer links go.etcd.io/etcd/client/v3 (etcd)",
		"leaf is imported by other",
		"other imports leaf",
		"other: its rules name lef",
		`typo-maker: Never links: "Dokcer" is not a known name`,
	}
	if len(got) != len(want) {
		t.Fatalf("problems:\n%s\nwant %d", strings.Join(got, "\n"), len(want))
	}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(p string) bool { return strings.HasPrefix(p, w) }) {
			t.Errorf("no problem starts with %q in:\n%s", w, strings.Join(got, "\n"))
		}
	}
}

package toolspec

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func validTool() Tool {
	return Tool{Name: "t1", Author: "a", Image: "busybox:1", DataRepo: "https://h.example/r.git"}
}

func TestToolValidate(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(*Tool)
		fields []string // the fields that must be named, in order; nil means valid
	}{
		{"minimal", func(*Tool) {}, nil},
		{"quotes in free text are fine", func(t *Tool) { t.Author = `O'Brien "x"`; t.Description = `say "hi"` }, nil},
		{"ssh scp-like url", func(t *Tool) { t.DataRepo = "git@h.example:data/r.git" }, nil},
		{"ssh url", func(t *Tool) { t.DataRepo = "ssh://git@h.example:22/r.git" }, nil},
		{"git url", func(t *Tool) { t.DataRepo = "git://127.0.0.1:9/r" }, nil},
		{"file url", func(t *Tool) { t.DataRepo = "file:///srv/data/r.git" }, nil},
		{"loopback registry image", func(t *Tool) { t.Image = "127.0.0.1:9/missing:1" }, nil},
		{"digest image", func(t *Tool) { t.Image = "busybox@sha256:" + strings.Repeat("ab", 32) }, nil},
		{"limits", func(t *Tool) {
			t.Resources = &Resources{CPUs: 0.5, Memory: "64MiB"}
			t.Timeout = "5s"
			t.Network = "none"
		}, nil},
		{"empty", func(t *Tool) { *t = Tool{} }, []string{"name", "author", "image", "data_repo"}},
		{"slash in name", func(t *Tool) { t.Name = "a/b" }, []string{"name"}},
		{"uppercase name", func(t *Tool) { t.Name = "Tool" }, []string{"name"}},
		{"long name", func(t *Tool) { t.Name = strings.Repeat("a", 64) }, []string{"name"}},
		{"quote in name", func(t *Tool) { t.Name = `t"1` }, []string{"name"}},
		{"bad image", func(t *Tool) { t.Image = "Busy Box:latest" }, []string{"image"}},
		{"quote in image", func(t *Tool) { t.Image = `busybox"` }, []string{"image"}},
		{"http data repo", func(t *Tool) { t.DataRepo = "http://h.example/r.git" }, []string{"data_repo"}},
		{"not a url", func(t *Tool) { t.DataRepo = "just words" }, []string{"data_repo"}},
		{"newline in scp-like url", func(t *Tool) { t.DataRepo = "git@h.example:path\nfoo" }, []string{"data_repo"}},
		{"tab in scp-like url", func(t *Tool) { t.DataRepo = "h.example:p\tz" }, []string{"data_repo"}},
		{"scheme without slashes", func(t *Tool) { t.DataRepo = "https:h.example/r.git" }, []string{"data_repo"}},
		{"host starting with a dash", func(t *Tool) { t.DataRepo = "-oProxyCommand=x:y" }, []string{"data_repo"}},
		{"quote in url", func(t *Tool) { t.DataRepo = `https://h.example/r".git` }, []string{"data_repo"}},
		{"file url with host", func(t *Tool) { t.DataRepo = "file://h.example/r" }, []string{"data_repo"}},
		{"bad code repo", func(t *Tool) { t.CodeRepo = "ftp://x/y" }, []string{"code_repo"}},
		{"control char", func(t *Tool) { t.Artefact = "a\x00b" }, []string{"artefact"}},
		{"multi-line author", func(t *Tool) { t.Author = "a\nb" }, []string{"author"}},
		{"env keys", func(t *Tool) { t.Env = map[string]string{"OK_1": "v", "9X": "v", "A-B": "v"} }, []string{"env.9X", "env.A-B"}},
		{"bad timeout", func(t *Tool) { t.Timeout = "soon" }, []string{"timeout"}},
		{"negative timeout", func(t *Tool) { t.Timeout = "-1s" }, []string{"timeout"}},
		{"bad resources", func(t *Tool) { t.Resources = &Resources{CPUs: -1, Memory: "1KiB"} }, []string{"resources.cpus", "resources.memory"}},
		{"bad memory", func(t *Tool) { t.Resources = &Resources{Memory: "lots"} }, []string{"resources.memory"}},
		{"bad network", func(t *Tool) { t.Network = "container:abc" }, []string{"network"}},
		{"user uid", func(t *Tool) { t.User = "1000" }, nil},
		{"user uid:gid", func(t *Tool) { t.User = "1000:100" }, nil},
		{"user root", func(t *Tool) { t.User = "0:0" }, nil},
		{"user largest id", func(t *Tool) { t.User = "2147483647:2147483647" }, nil},
		{"user name", func(t *Tool) { t.User = "nobody" }, []string{"user"}},
		{"user uid:name", func(t *Tool) { t.User = "1000:staff" }, []string{"user"}},
		{"user negative", func(t *Tool) { t.User = "-1" }, []string{"user"}},
		{"user too large", func(t *Tool) { t.User = "2147483648" }, []string{"user"}},
		{"user empty gid", func(t *Tool) { t.User = "1000:" }, []string{"user"}},
		{"user spaces", func(t *Tool) { t.User = " 1000" }, []string{"user"}},
		{"bad input dataset", func(t *Tool) { t.InputDataset = "../x" }, []string{"input_dataset"}},
		{"password in data repo", func(t *Tool) { t.DataRepo = "https://ada:hunter2@h.example/r.git" }, []string{"data_repo"}},
		{"token as user in data repo", func(t *Tool) { t.DataRepo = "https://ghp_s3cret@h.example/r.git" }, []string{"data_repo"}},
		{"password in ssh data repo", func(t *Tool) { t.DataRepo = "ssh://git:hunter2@h.example/r.git" }, []string{"data_repo"}},
		{"password in scp-like data repo", func(t *Tool) { t.DataRepo = "git:hunter2@h.example:r.git" }, []string{"data_repo"}},
		{"user in git url", func(t *Tool) { t.DataRepo = "git://ada@h.example/r" }, []string{"data_repo"}},
		{"password in code repo", func(t *Tool) { t.CodeRepo = "https://ada:hunter2@h.example/tools/t" }, []string{"code_repo"}},
		{"ssh login in code repo", func(t *Tool) { t.CodeRepo = "git@h.example:tools/t.git" }, nil},
		{"push to the branch", func(t *Tool) { t.Push, t.Branch = PushBranch, "results" }, nil},
		{"push to the site's branch", func(t *Tool) { t.Push = PushSiteBranch }, nil},
		{"push off", func(t *Tool) { t.Push = PushOff }, nil},
		{"unknown push", func(t *Tool) { t.Push = "force" }, []string{"push"}},
		{"push spelled otherwise", func(t *Tool) { t.Push = "Branch" }, []string{"push"}},
		{"bad branch", func(t *Tool) { t.Branch = "a..b" }, []string{"branch"}},
		{"a site's branch", func(t *Tool) { t.Branch = "mao/lab-a" }, []string{"branch"}},
		{"everything at once", func(t *Tool) {
			t.Name, t.Image, t.DataRepo, t.Timeout = "A/B", "x y", "", "0s"
		}, []string{"name", "image", "data_repo", "timeout"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tool := validTool()
			tc.edit(&tool)
			err := tool.Validate()
			if got := fieldNames(t, err); strings.Join(got, ",") != strings.Join(tc.fields, ",") {
				t.Fatalf("fields with problems = %v, want %v (err: %v)", got, tc.fields, err)
			}
		})
	}
}

// TestCredentialsRefused checks that a URL with credentials is refused
// with a message that tells where credentials belong and hides the secret.
func TestCredentialsRefused(t *testing.T) {
	for _, u := range []string{
		"https://ada:hunter2@h.example/r.git",
		"https://hunter2@h.example/r.git",
		"ssh://git:hunter2@h.example/r.git",
		"git:hunter2@h.example:r.git",
		"https://ada:hunter2 x@h.example/r.git",
		"https://hunter2%zz@h.example/r.git",
	} {
		tool := validTool()
		tool.DataRepo = u
		ds := Dataset{Name: "d", URL: u}
		for _, err := range []error{tool.Validate(), ds.Validate()} {
			if err == nil || !strings.Contains(err.Error(), "[git] section of each site's config.ini") || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("%s: %v", u, err)
			}
		}
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://h.example/r.git", "https://h.example/r.git"},
		{"https://ada:hunter2@h.example/r.git", "https://ada:***@h.example/r.git"},
		{"https://hunter2@h.example/r.git", "https://***@h.example/r.git"},
		{"http://hunter2@h.example/r", "http://***@h.example/r"},
		{"git://ada@h.example/r", "git://***@h.example/r"},
		{"ssh://git@h.example:22/r.git", "ssh://git@h.example:22/r.git"},
		{"ssh://git:hunter2@h.example/r.git", "ssh://git:***@h.example/r.git"},
		{"git@h.example:r.git", "git@h.example:r.git"},
		{"git:hunter2@h.example:r.git", "git:***@h.example:r.git"},
		{"h.example:path/with@at", "h.example:path/with@at"},
		{"https://hunter2%zz@h.example/r", "https://***@h.example/r"},
		{"file:///srv/r", "file:///srv/r"},
		{"", ""},
	}
	for _, tc := range tests {
		if got := RedactURL(tc.in); got != tc.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	text := `git clone https://ada:hunter2@h.example/r.git: auth failed; ssh://git@h.example/r "https://tok@h"`
	if got, want := RedactText(text), `git clone https://***@h.example/r.git: auth failed; ssh://***@h.example/r "https://***@h"`; got != want {
		t.Errorf("RedactText = %q, want %q", got, want)
	}
}

func fieldNames(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v is not a *ValidationError", err)
	}
	var names []string
	for _, f := range ve.Fields {
		if len(names) == 0 || names[len(names)-1] != f.Field {
			names = append(names, f.Field)
		}
		if !strings.Contains(ve.Error(), f.Field+": ") {
			t.Errorf("message %q does not name field %s", ve.Error(), f.Field)
		}
	}
	return names
}

func TestDatasetValidate(t *testing.T) {
	tests := []struct {
		name   string
		ds     Dataset
		fields []string
	}{
		{"minimal", Dataset{Name: "d", URL: "file:///srv/d.git"}, nil},
		{"full", Dataset{Name: "linux-src", URL: "https://h.example/l.git", Branch: "release/6.1", Owner: "lab", Description: "kernel"}, nil},
		{"empty", Dataset{}, []string{"name", "url"}},
		{"bad branch", Dataset{Name: "d", URL: "git://h/d", Branch: "a..b"}, []string{"branch"}},
		{"slash name and quote url", Dataset{Name: "a/b", URL: `https://h/"d`}, []string{"name", "url"}},
		{"ssh login", Dataset{Name: "d", URL: "ssh://git@h.example/d.git"}, nil},
		{"password", Dataset{Name: "d", URL: "https://ada:hunter2@h.example/d.git"}, []string{"url"}},
		{"token as user", Dataset{Name: "d", URL: "https://hunter2@h.example/d.git"}, []string{"url"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := fieldNames(t, tc.ds.Validate())
			if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
				t.Fatalf("fields = %v, want %v", got, tc.fields)
			}
		})
	}
}

func TestLoadTool(t *testing.T) {
	tests := []struct {
		file    string
		wantErr string
		check   func(*testing.T, Tool)
	}{
		{file: "testdata/mao-record.json", check: func(t *testing.T, tool Tool) {
			if tool.Name != "gh-crawler" || tool.Artefact != "github metadata" {
				t.Errorf("decoded %+v", tool)
			}
			if tool.TimeoutDuration() != DefaultTimeout || tool.NetworkName() != DefaultNetwork {
				t.Errorf("defaults: timeout %v network %q", tool.TimeoutDuration(), tool.NetworkName())
			}
		}},
		{file: "testdata/full.yaml", check: func(t *testing.T, tool Tool) {
			if tool.TimeoutDuration() != 90*time.Minute || tool.MemoryBytes() != 512<<20 || tool.CPUs() != 1.5 {
				t.Errorf("limits: %v %v %v", tool.TimeoutDuration(), tool.MemoryBytes(), tool.CPUs())
			}
			if tool.Author != `O'Brien "the analyst"` || tool.Env["LANGS"] != "go,python" || len(tool.Command) != 2 {
				t.Errorf("decoded %+v", tool)
			}
			if uid, gid, ok := tool.UserIDs(); tool.User != "1000:100" || uid != 1000 || gid != 100 || !ok {
				t.Errorf("user %q: %d %d %v", tool.User, uid, gid, ok)
			}
			if tool.Branch != "results" || tool.PushMode() != PushSiteBranch {
				t.Errorf("branch %q, push %q", tool.Branch, tool.PushMode())
			}
		}},
		{file: "testdata/unknown-field.yaml", wantErr: "imagee"},
		{file: "testdata/missing.yaml", wantErr: "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			tool, err := LoadTool(tc.file)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := tool.Validate(); err != nil {
				t.Fatalf("validate: %v", err)
			}
			tc.check(t, tool)
		})
	}
}

func TestDecodeStrictJSON(t *testing.T) {
	tests := []struct {
		in      string
		wantErr string
	}{
		{`{"name":"d","url":"file:///x"}`, ""},
		{`{"name":"d","url":"file:///x","extra":1}`, "unknown field"},
		{`{"name":"d"} {"name":"e"}`, "more than one"},
		{`{"name":`, "unexpected EOF"},
	}
	for _, tc := range tests {
		var d Dataset
		err := Decode([]byte(tc.in), true, &d)
		if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("Decode(%s) = %v, want %q", tc.in, err, tc.wantErr)
		}
	}
}

func TestUserIDs(t *testing.T) {
	tests := []struct {
		user     string
		uid, gid int
		ok       bool
	}{
		{"", 0, -1, false},
		{"1000", 1000, -1, true},
		{"0:0", 0, 0, true},
		{"1000:100", 1000, 100, true},
	}
	for _, tc := range tests {
		tool := validTool()
		tool.User = tc.user
		if uid, gid, ok := tool.UserIDs(); uid != tc.uid || gid != tc.gid || ok != tc.ok {
			t.Errorf("UserIDs(%q) = %d, %d, %v; want %d, %d, %v", tc.user, uid, gid, ok, tc.uid, tc.gid, tc.ok)
		}
	}
}

// TestValidateStored: a record written before credentials were refused
// stays usable (its URLs are shown hidden), while everything else about it
// is checked as for a new record.
func TestValidateStored(t *testing.T) {
	old := Tool{Name: "old", Author: "a", Image: "busybox", DataRepo: "https://ada:pw@git.example.org/d.git", CodeRepo: "https://tok@h/c"}
	if err := old.Validate(); err == nil {
		t.Error("Validate accepted credentials")
	}
	if err := old.ValidateStored(); err != nil {
		t.Errorf("ValidateStored: %v", err)
	}
	bad := old
	bad.Network = "host; rm -rf /"
	if err := bad.ValidateStored(); err == nil {
		t.Error("ValidateStored accepted a bad network")
	}
	ds := Dataset{Name: "d", URL: "user:pw@host:path"}
	if err := ds.Validate(); err == nil {
		t.Error("Validate accepted an scp-like password")
	}
	if err := ds.ValidateStored(); err != nil {
		t.Errorf("ValidateStored: %v", err)
	}
}

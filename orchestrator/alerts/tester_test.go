package alerts

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/notify"
	"github.com/mao-research/mao/toolspec"
)

const (
	secret    = "hunter2-very-secret"
	secretURL = "smtp://alice:" + secret + "@mail.example.org:587/?from=mao@example.org&to=ops@example.org"
)

func newTester(t *testing.T, channels []string) (*Tester, *fakeSender, *fakeRecorder) {
	t.Helper()
	tmpl, err := notify.NewTemplates("", "")
	if err != nil {
		t.Fatal(err)
	}
	s, r := &fakeSender{fail: map[string]error{}}, &fakeRecorder{}
	return &Tester{Sender: s, Templates: tmpl, Recorder: r, Site: testSite, Channels: channels,
		Clock: clockwork.NewFakeClockAt(t0)}, s, r
}

func TestTesterNoChannels(t *testing.T) {
	tr, s, r := newTester(t, nil)
	out, err := tr.Test(context.Background(), "")
	var ve *toolspec.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Test = %v, %v; want a *toolspec.ValidationError", out, err)
	}
	if len(ve.Fields) != 1 || ve.Fields[0].Field != "url" {
		t.Errorf("fields %+v, want one on url", ve.Fields)
	}
	if len(s.sent) != 0 || len(r.keeps) != 0 {
		t.Errorf("sent %d and recorded %d, want nothing", len(s.sent), len(r.keeps))
	}
}

func TestTesterSends(t *testing.T) {
	errRefused := errors.New("send to smtp://mail.example.org:587: connection refused")
	tests := []struct {
		name     string
		site     []string
		url      string
		fail     map[string]error
		wantURLs []string // sent to, in order
		want     []api.Notification
	}{
		{
			name: "a URL, with a password", site: []string{"site://one"}, url: secretURL,
			wantURLs: []string{secretURL},
			want: []api.Notification{{ID: "n-1", Channel: "smtp://alice:***@mail.example.org:587/?from=mao@example.org&to=ops@example.org",
				Status: notify.StatusSent}},
		},
		{
			name: "the site's channels", site: []string{"generic://example.org/hook", secretURL},
			wantURLs: []string{"generic://example.org/hook", secretURL},
			want: []api.Notification{
				{ID: "n-1", Channel: "generic://example.org/hook", Status: notify.StatusSent},
				{ID: "n-2", Channel: "smtp://alice:***@mail.example.org:587/?from=mao@example.org&to=ops@example.org", Status: notify.StatusSent},
			},
		},
		{
			name: "a failing sender", url: secretURL, fail: map[string]error{secretURL: errRefused},
			wantURLs: []string{secretURL},
			want: []api.Notification{{ID: "n-1", Channel: "smtp://alice:***@mail.example.org:587/?from=mao@example.org&to=ops@example.org",
				Status: notify.StatusFailed, Error: errRefused.Error()}},
		},
		{
			name: "one of the site's channels fails", site: []string{"generic://example.org/hook", secretURL},
			fail:     map[string]error{"generic://example.org/hook": errRefused},
			wantURLs: []string{"generic://example.org/hook", secretURL},
			want: []api.Notification{
				{ID: "n-1", Channel: "generic://example.org/hook", Status: notify.StatusFailed, Error: errRefused.Error()},
				{ID: "n-2", Channel: "smtp://alice:***@mail.example.org:587/?from=mao@example.org&to=ops@example.org", Status: notify.StatusSent},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, s, r := newTester(t, tt.site)
			if tt.fail != nil {
				s.fail = tt.fail
			}
			out, err := tr.Test(context.Background(), tt.url)
			if err != nil {
				t.Fatal(err)
			}
			var urls []string
			for _, snt := range s.sent {
				urls = append(urls, snt.url)
				if !strings.Contains(snt.m.Title, "test notification from site "+testSite) {
					t.Errorf("title %q is not the test message's", snt.m.Title)
				}
				if !snt.hasDeadline {
					t.Errorf("the send to %s has no time limit", snt.url)
				}
			}
			if !reflect.DeepEqual(urls, tt.wantURLs) {
				t.Errorf("sent to %v, want %v", urls, tt.wantURLs)
			}
			for i := range tt.want {
				w := &tt.want[i]
				w.Kind, w.Site, w.Attempts, w.CreatedAt, w.FinishedAt = notify.KindTest, testSite, 1, t0, t0
				w.Title = "[mao] test notification from site " + testSite
			}
			if !reflect.DeepEqual(out, tt.want) {
				t.Errorf("outcomes\n%+v, want\n%+v", out, tt.want)
			}
			if !reflect.DeepEqual(r.saved, tt.want) {
				t.Errorf("recorded\n%+v, want\n%+v", r.saved, tt.want)
			}
			for _, keep := range r.keeps {
				if keep != KeepNotifications {
					t.Errorf("recorded keeping %d, want %d", keep, KeepNotifications)
				}
			}
			for _, n := range out {
				if strings.Contains(n.Channel, secret) || strings.Contains(n.Error, secret) {
					t.Errorf("outcome %+v shows the password", n)
				}
			}
		})
	}
}

func TestTesterRecordError(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		wantErr bool
	}{
		{"store fails", errors.New("etcd unavailable"), true},
		// The caller went away: the outcome is still the answer.
		{"ctx canceled", context.Canceled, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, s, r := newTester(t, nil)
			r.err = tt.err
			out, err := tr.Test(context.Background(), secretURL)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Test = %v, %v; want an error: %v", out, err, tt.wantErr)
			}
			if !tt.wantErr && (len(out) != 1 || out[0].Status != notify.StatusSent) {
				t.Errorf("outcomes %+v, want the one sent", out)
			}
			if len(s.sent) != 1 {
				t.Errorf("%d sends, want 1", len(s.sent))
			}
		})
	}
}

func TestOutcome(t *testing.T) {
	at := t0.Add(time.Second)
	o := notify.Outcome{ID: "id", Kind: notify.KindSpike, Tool: testTool, Site: testSite, RunID: "run-1", Metric: "control",
		Channel: "slack://***", Status: notify.StatusFailed, Attempts: 5, Error: "boom", Title: "title", CreatedAt: t0, FinishedAt: at}
	want := api.Notification{ID: "id", Kind: notify.KindSpike, Tool: testTool, Site: testSite, Run: "run-1", Metric: "control",
		Channel: "slack://***", Status: notify.StatusFailed, Attempts: 5, Error: "boom", Title: "title", CreatedAt: t0, FinishedAt: at}
	if got := Outcome(o); got != want {
		t.Errorf("Outcome = %+v, want %+v", got, want)
	}
	// Every field of Outcome is carried: a field added to one but not the
	// other shows here.
	if a, b := reflect.TypeFor[notify.Outcome]().NumField(), reflect.TypeFor[api.Notification]().NumField(); a != b {
		t.Errorf("notify.Outcome has %d fields, api.Notification %d", a, b)
	}
}

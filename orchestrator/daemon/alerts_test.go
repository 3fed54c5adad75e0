package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/detector"
	"github.com/mao-research/mao/internal/testenv"
)

// webhook is a generic JSON webhook receiver on loopback.
func webhook(t *testing.T) (url string, got <-chan map[string]string) {
	t.Helper()
	ch := make(chan map[string]string, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]string
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		ch <- m
	}))
	t.Cleanup(srv.Close)
	return "generic://" + strings.TrimPrefix(srv.URL, "http://") + "/hook?template=json&disabletls=yes", ch
}

// recv waits for the next message on ch.
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatal("no message within 30s")
		var zero T
		return zero
	}
}

// mailbox is an SMTP server on loopback that keeps every message.
type mailbox struct{ got chan string }

func (m *mailbox) NewSession(*smtp.Conn) (smtp.Session, error) { return &mailSession{m}, nil }

type mailSession struct{ m *mailbox }

func (s *mailSession) Reset()                               {}
func (s *mailSession) Logout() error                        { return nil }
func (s *mailSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *mailSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *mailSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	s.m.got <- string(b)
	return err
}

func smtpServer(t *testing.T) (url string, got <-chan string) {
	t.Helper()
	box := &mailbox{got: make(chan string, 100)}
	srv := smtp.NewServer(box)
	srv.Domain, srv.AllowInsecureAuth = "localhost", true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return fmt.Sprintf("smtp://%s/?fromaddress=mao@example.org&toaddresses=team@example.org&auth=None&encryption=None&usestarttls=no",
		ln.Addr()), box.got
}

// TestSpikeIsNotifiedOnce runs a real tool in Docker whose control values
// jump, and checks that a webhook and an SMTP server each get one spike
// message, nothing while it stays high (cooldown), and one message when it
// is back to normal.
func TestSpikeIsNotifiedOnce(t *testing.T) {
	image := testenv.BuildTestImage(t)
	hookURL, hook := webhook(t)
	mailURL, mail := smtpServer(t)
	cfg := testenv.SiteConfig(t, "alerts", testenv.Etcd(t))
	cfg.Notify.URLs = []string{hookURL, mailURL}
	s := startSite(t, cfg)
	ctx := context.Background()
	repo := testenv.GitRepo(t, nil)

	// Each run writes one control value; the tool is registered again with
	// the next value (its series is kept by name).
	run := func(value string) api.Run {
		t.Helper()
		_ = s.client.RemoveTool(ctx, "sensor")
		tool := api.Tool{Name: "sensor", Author: "t", Image: image, DataRepo: repo, Network: "none",
			Command: []string{"-control", value}, Detector: &detector.Config{Window: 10, MinHistory: 5}}
		if _, err := s.client.RegisterTool(ctx, tool); err != nil {
			t.Fatal(err)
		}
		r, _ := s.runToEnd(t, "sensor")
		if r.State != api.StateSucceeded || len(r.Verdicts) != 1 {
			t.Fatalf("run with %s: %s %s, verdicts %+v", value, r.State, r.Reason, r.Verdicts)
		}
		return r
	}
	for _, v := range []string{"10", "12", "11", "9", "10", "11", "12", "10"} {
		if r := run(v); r.Verdicts[0].Spike {
			t.Fatalf("value %s flagged: %+v", v, r.Verdicts[0])
		}
	}
	spike := run("100")
	if v := spike.Verdicts[0]; !v.Spike || v.Status != detector.StatusSpike || v.Method != "mad" || *v.Value != 100 {
		t.Fatalf("the jump: %+v", v)
	}
	first := recv(t, hook)
	if !strings.Contains(first["title"], "spike in sensor") || !strings.Contains(first["message"], spike.ID) ||
		!strings.Contains(first["message"], "100") {
		t.Fatalf("webhook spike message: %+v", first)
	}
	if m := recv(t, mail); !strings.Contains(m, "Subject: ") || !strings.Contains(m, "spike in sensor") || !strings.Contains(m, spike.ID) {
		t.Fatalf("mail spike message:\n%s", m)
	}

	if r := run("120"); !r.Verdicts[0].Spike {
		t.Fatalf("still high: %+v", r.Verdicts[0])
	}
	back := run("11")
	if back.Verdicts[0].Spike {
		t.Fatalf("back to normal flagged: %+v", back.Verdicts[0])
	}
	// The next message is the resolution: the second high value sent
	// nothing (events go out in order).
	if m := recv(t, hook); !strings.Contains(m["title"], "back to normal") || !strings.Contains(m["message"], back.ID) {
		t.Fatalf("webhook message after the spike: %+v", m)
	}
	if m := recv(t, mail); !strings.Contains(m, "back to normal") {
		t.Fatalf("mail after the spike:\n%s", m)
	}
	select {
	case m := <-hook:
		t.Fatalf("an extra webhook message: %+v", m)
	case m := <-mail:
		t.Fatalf("an extra mail:\n%s", m)
	default:
	}
	// Each outcome is recorded right after its send.
	var outcomes []api.Notification
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		list, err := s.client.Notifications(ctx, "sensor", 0)
		if err != nil {
			t.Fatal(err)
		}
		outcomes = list.Items
		if len(outcomes) >= 4 || time.Now().After(deadline) {
			break
		}
	}
	if len(outcomes) != 4 {
		t.Fatalf("notifications: %+v", outcomes)
	}
	for _, o := range outcomes {
		if o.Status != "sent" || o.Site != "alerts" {
			t.Errorf("outcome %+v", o)
		}
	}
}

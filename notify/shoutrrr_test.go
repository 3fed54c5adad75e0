package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

var testMessage = Message{Title: "[mao] spike in gh-crawler (control) at site lab-a",
	Body: "spike in gh-crawler (control) at site lab-a.\n\nValue: 412"}

// request is what a loopback webhook received.
type request struct {
	method, path, token, contentType string
	body                             []byte
}

// webhook is a loopback HTTP server that hands each request to the test
// and answers with status.
func webhook(t *testing.T, status int) (*httptest.Server, <-chan request) {
	t.Helper()
	got := make(chan request, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- request{r.Method, r.URL.Path, r.URL.Query().Get("token"), r.Header.Get("Content-Type"), body}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func TestShoutrrrGenericWebhook(t *testing.T) {
	const secret = "W3BH00K-S3CRET-t0k3n"
	srv, got := webhook(t, http.StatusNoContent)
	host := strings.TrimPrefix(srv.URL, "http://")
	tests := []struct {
		name, url, wantType string
		check               func(t *testing.T, body []byte)
	}{
		{"json template", "generic://" + host + "/hooks/mao?template=json&disabletls=yes&token=" + secret, "application/json",
			func(t *testing.T, body []byte) {
				var payload map[string]string
				if err := json.Unmarshal(body, &payload); err != nil {
					t.Fatalf("body %s: %v", body, err)
				}
				if payload["title"] != testMessage.Title || payload["message"] != testMessage.Body {
					t.Errorf("payload %v, want title %q and message %q", payload, testMessage.Title, testMessage.Body)
				}
			}},
		{"json template, own keys and data", "generic://" + host + "/hooks/mao?template=json&disabletls=yes&titlekey=subject&messagekey=text&$site=lab-a&token=" + secret,
			"application/json",
			func(t *testing.T, body []byte) {
				var payload map[string]string
				if err := json.Unmarshal(body, &payload); err != nil {
					t.Fatalf("body %s: %v", body, err)
				}
				if payload["subject"] != testMessage.Title || payload["text"] != testMessage.Body || payload["site"] != "lab-a" {
					t.Errorf("payload %v", payload)
				}
			}},
		{"plain text, custom url", "generic+" + srv.URL + "/hooks/mao?token=" + secret, "text/plain",
			func(t *testing.T, body []byte) {
				if want := testMessage.Title + "\n\n" + testMessage.Body; string(body) != want {
					t.Errorf("body %q, want %q", body, want)
				}
			}},
	}
	s := NewShoutrrrSender()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.Send(t.Context(), tt.url, testMessage); err != nil {
				t.Fatal(err)
			}
			r := <-got // the server got it before Send returned
			if r.method != http.MethodPost || r.path != "/hooks/mao" || r.token != secret || r.contentType != tt.wantType {
				t.Errorf("request %s %s token %q type %q", r.method, r.path, r.token, r.contentType)
			}
			tt.check(t, r.body)
		})
	}
}

func TestShoutrrrErrorsHideSecrets(t *testing.T) {
	const secret = "W3BH00K-S3CRET-t0k3n"
	failing, _ := webhook(t, http.StatusInternalServerError)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close() // nothing listens there any more
	tests := []struct{ name, url, wantErr string }{
		{"server error", "generic://" + strings.TrimPrefix(failing.URL, "http://") + "/in?disabletls=yes&token=" + secret,
			"500 Internal Server Error"},
		{"connection refused", "generic+" + closed.URL + "/in?token=" + secret, "connection refused"},
		{"smtp without a sender", "smtp://mao:" + secret + "@127.0.0.1:25/?toaddresses=ops@lab.org", "fromAddress missing"},
		{"unknown service", "nope://" + secret + "@x", "unknown service"},
		{"url does not parse", "smtp://mao:" + secret + "%zz@127.0.0.1/", "parse url"},
	}
	s := NewShoutrrrSender()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Send(t.Context(), tt.url, testMessage)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
			}
			for e := err; e != nil; e = errors.Unwrap(e) {
				if strings.Contains(e.Error(), secret) || strings.Contains(e.Error(), "S3CRET") {
					t.Fatalf("error holds the secret: %v", e)
				}
			}
			t.Log(err)
			if !strings.HasPrefix(err.Error(), "send to "+Redact(tt.url)) && !strings.HasPrefix(err.Error(), "channel "+Redact(tt.url)) {
				t.Errorf("error %q does not name the channel by its redacted URL", err)
			}
		})
	}
}

func TestShoutrrrRespectsContext(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release // a webhook that hangs
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first: lets the handler, and shoutrrr's call, end
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- NewShoutrrrSender().Send(ctx, "generic+"+srv.URL+"/in", testMessage) }()
	<-arrived
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if err := NewShoutrrrSender().Send(ctx, "generic+"+srv.URL+"/in", testMessage); !errors.Is(err, context.Canceled) {
		t.Fatalf("with a done ctx: got %v, want context.Canceled", err)
	}
}

// mail is what the loopback SMTP server received.
type mail struct {
	user, pass, from string
	to               []string
	data             string
}

// smtpServer is a loopback SMTP server taking PLAIN authentication.
type smtpServer struct {
	mu    sync.Mutex
	cur   mail
	mails chan mail
}

func (s *smtpServer) NewSession(*smtp.Conn) (smtp.Session, error) { return &smtpSession{s: s}, nil }

type smtpSession struct {
	s *smtpServer
	m mail
}

func (x *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }
func (x *smtpSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		x.m.user, x.m.pass = user, pass
		if pass != smtpPassword {
			return errors.New("invalid credentials")
		}
		return nil
	}), nil
}
func (x *smtpSession) Mail(from string, _ *smtp.MailOptions) error { x.m.from = from; return nil }
func (x *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.m.to = append(x.m.to, to)
	return nil
}
func (x *smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	x.m.data = string(b)
	x.s.mails <- x.m
	return err
}
func (x *smtpSession) Reset()        { x.m = mail{user: x.m.user, pass: x.m.pass} }
func (x *smtpSession) Logout() error { return nil }

const smtpPassword = "SMTP-p4ss-S3CRET"

func TestShoutrrrSMTP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	backend := &smtpServer{mails: make(chan mail, 10)}
	srv := smtp.NewServer(backend)
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	go func() { _ = srv.Serve(l) }() // returns when Close closes the listener
	t.Cleanup(func() { _ = srv.Close() })
	port := l.Addr().(*net.TCPAddr).Port

	url := func(pass string) string {
		return fmt.Sprintf("smtp://mao:%s@127.0.0.1:%d/?fromaddress=mao@lab.org&toaddresses=ops@lab.org,pi@lab.org"+
			"&auth=Plain&encryption=None&usestarttls=no", pass, port)
	}
	s := NewShoutrrrSender()
	if err := s.Send(t.Context(), url(smtpPassword), testMessage); err != nil {
		t.Fatal(err)
	}
	for _, to := range []string{"ops@lab.org", "pi@lab.org"} {
		m := <-backend.mails
		if m.user != "mao" || m.pass != smtpPassword || m.from != "mao@lab.org" || len(m.to) != 1 || m.to[0] != to {
			t.Errorf("mail from %s as %s:%s to %v, want to %s", m.from, m.user, m.pass, m.to, to)
		}
		if !strings.Contains(m.data, "Subject: "+testMessage.Title+"\r\n") || !strings.Contains(m.data, "\r\n\r\n"+
			strings.ReplaceAll(testMessage.Body, "\n", "\r\n")) {
			t.Errorf("mail:\n%s\nwant subject %q and body %q", m.data, testMessage.Title, testMessage.Body)
		}
	}

	const wrong = "WR0NG-p4ss-S3CRET"
	err = s.Send(t.Context(), url(wrong), testMessage)
	if err == nil || strings.Contains(err.Error(), wrong) {
		t.Fatalf("with a wrong password: got %v, want an error without it", err)
	}
	t.Log(err)
}

// TestShoutrrrBoundsHangingSends: a webhook that never answers holds at
// most MaxInflight sends; further ones fail when their ctx ends, and sends
// work again once the hanging ones end.
func TestShoutrrrBoundsHangingSends(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, MaxInflight+1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
	}))
	defer srv.Close()
	released := false
	defer func() {
		if !released {
			close(release) // before srv.Close, which waits for the handlers
		}
	}()
	url := "generic://" + strings.TrimPrefix(srv.URL, "http://") + "/hook?disabletls=yes"
	s := NewShoutrrrSender()
	for range MaxInflight {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Send(ctx, url, testMessage) }()
		<-arrived // the call hangs at the server
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("hanging send: %v, want context.Canceled", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond) // it waits for a slot, then gives up
	defer cancel()
	if err := s.Send(ctx, url, testMessage); err == nil || !strings.Contains(err.Error(), "earlier sends still wait") {
		t.Fatalf("send past the bound: %v", err)
	}
	close(release)
	released = true
	if err := s.Send(context.Background(), url, testMessage); err != nil {
		t.Fatalf("send once the hanging ones ended: %v", err)
	}
}

// TestCheckURL checks which channel URLs are refused before anything is
// sent, and that a refusal never quotes the URL's secrets.
func TestCheckURL(t *testing.T) {
	tests := []struct {
		url  string
		want string // "" accepts
	}{
		{"slack://hook:s3cret-token@channel", ""},
		{"smtp://user:s3cret@127.0.0.1:25/?from=a@b.c&to=d@e.f", ""},
		{"generic+https://127.0.0.1:9/hook?token=s3cret", ""},
		{"generic://127.0.0.1:9/hook", ""},
		{"SLACK://hook:s3cret@channel", ""},
		{"ftp://user:s3cret@127.0.0.1/", `"ftp" is not one of shoutrrr's schemes`},
		{"slack+https://user:s3cret@127.0.0.1/", "takes no custom URL"},
		{"%zz://s3cret", "is not a URL"},
	}
	for _, tc := range tests {
		err := CheckURL(tc.url)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v, want it accepted", tc.url, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want an error saying %q", tc.url, err, tc.want)
		case err != nil && strings.Contains(err.Error(), "s3cret"):
			t.Errorf("%s: the error quotes the secret: %v", tc.url, err)
		}
	}
}

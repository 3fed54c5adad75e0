package notify

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	tests := []struct {
		name, url, want string
		secrets         []string
	}{
		{"slack webhook", "slack://hook:WNA3PBYV6-F20DUQND3RQ-Webc4MAvoacrpPakR8phF0zi@webhook?color=good&botname=mao",
			"slack://hook:***@webhook?color=good&botname=mao", []string{"WNA3PBYV6-F20DUQND3RQ-Webc4MAvoacrpPakR8phF0zi"}},
		{"slack bot", "slack://xoxb:123456789012-1234567890123-4mt0t4l1YL3g1T5L4cK70k3N@C001CH4NN3L",
			"slack://xoxb:***@***", []string{"4mt0t4l1YL3g1T5L4cK70k3N", "C001CH4NN3L"}},
		{"slack old form", "slack://T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
			"slack://***/***/***", []string{"T00000000", "B00000000", "XXXXXXXXXXXXXXXXXXXXXXXX"}},
		{"telegram", "telegram://110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw@telegram?chats=@mao,-1001234&preview=no",
			"telegram://110201543:***@telegram?chats=@mao,-1001234&preview=no", []string{"AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"}},
		{"smtp with password", "smtp://mao%40lab.org:p%40ss%2Fw0rd!@smtp.lab.org:587/?fromaddress=mao@lab.org&toaddresses=ops@lab.org&auth=Plain",
			"smtp://mao%40lab.org:***@smtp.lab.org:587/?fromaddress=mao@lab.org&toaddresses=ops@lab.org&auth=Plain",
			[]string{"p@ss/w0rd!", "p%40ss%2Fw0rd!"}},
		{"generic webhook with token", "generic://hooks.lab.org/api/v1/ingest?template=json&token=s3cr3t-t0k3n&disabletls=yes",
			"generic://hooks.lab.org/api/v1/***?template=json&token=***&disabletls=yes", []string{"s3cr3t-t0k3n", "ingest"}},
		{"generic headers and extra data", "generic://hooks.lab.org/x?@Authorization=Bearer%20abcdefghij&$site=lab-a",
			"generic://hooks.lab.org/***?@Authorization=***&$site=***", []string{"abcdefghij", "Bearer abcdefghij"}},
		{"generic custom url", "generic+https://hooks.lab.org/hook/9f8e7d6c5b4a?key=k3yk3yk3y",
			"generic+https://hooks.lab.org/hook/***?key=***", []string{"9f8e7d6c5b4a", "k3yk3yk3y"}},
		{"matrix", "matrix://mao:m4trixP4ss@matrix.lab.org:8448/?rooms=!abc:lab.org&disableTLS=no",
			"matrix://mao:***@matrix.lab.org:8448/?rooms=!abc:lab.org&disableTLS=no", []string{"m4trixP4ss"}},
		{"teams", "teams://11111111-4444-4444-8444-cccccccccccc@22222222-4444-4444-8444-cccccccccccc/33333333012222222222333333333344/44444444-4444-4444-8444-cccccccccccc/V2ESyij_gAljSoUQHvZoZYzlpAoAXExyOl26dlf1xHEx05?host=contoso.webhook.office.com",
			"teams://***@***/***/***/***?host=contoso.webhook.office.com",
			[]string{"11111111-4444-4444-8444-cccccccccccc", "22222222-4444-4444-8444-cccccccccccc", "33333333012222222222333333333344",
				"44444444-4444-4444-8444-cccccccccccc", "V2ESyij_gAljSoUQHvZoZYzlpAoAXExyOl26dlf1xHEx05"}},
		{"discord", "discord://t0k3nt0k3n@123456789012?thread_id=42", "discord://***@***?thread_id=42", []string{"t0k3nt0k3n", "123456789012"}},
		{"googlechat", "googlechat://chat.googleapis.com/v1/spaces/FOOSPACE/messages?key=barkey&token=baztoken",
			"googlechat://chat.googleapis.com/v1/spaces/***/messages?key=***&token=***", []string{"FOOSPACE", "barkey", "baztoken"}},
		{"pushbullet key with a dot", "pushbullet://o.abcdefghijklmnop/device", "pushbullet://***/***", []string{"o.abcdefghijklmnop"}},
		{"key as host", "wecom://693axxx6-7aoc-4bc4-97a0-0ec2sifa5aaa", "wecom://***", []string{"693axxx6-7aoc-4bc4-97a0-0ec2sifa5aaa"}},
		{"query key alone", "generic://h.lab.org/?sekrit-token", "generic://h.lab.org/?***", []string{"sekrit-token"}},
		{"fragment", "pushbullet://tok3ntok3n/#chann3l", "pushbullet://***/#***", []string{"tok3ntok3n", "chann3l"}},
		{"opaque", "slack:tok3ntok3n", "slack:***", []string{"tok3ntok3n"}},
		{"does not parse", "smtp://u:pa%zzss@h.lab.org", "smtp://***", []string{"pa%zzss"}},
		{"no scheme", "tok3ntok3n", "***", []string{"tok3ntok3n"}},
		{"loopback generic", "generic://127.0.0.1:8080/hook?disabletls=yes", "generic://127.0.0.1:8080/hook?disabletls=yes", nil},
		{"dotless host with port", "generic://alertmanager:9093/", "generic://alertmanager:9093/", nil},
		{"dotless host without port", "ntfy://myserver/topic", "ntfy://***/***", []string{"myserver", "topic"}},
		{"logger", "logger://", "logger://", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Redact(tt.url)
			if got != tt.want {
				t.Errorf("Redact(%q)\n = %q\nwant %q", tt.url, got, tt.want)
			}
			for _, s := range tt.secrets {
				if strings.Contains(got, s) {
					t.Errorf("secret %q survives in %q", s, got)
				}
			}
			// An error text with the URL and its secrets unescaped hides them too.
			text := fmt.Sprintf("post %q: %s", tt.url, strings.Join(tt.secrets, " "))
			scrubbed := Scrub(tt.url, text)
			for _, s := range tt.secrets {
				if strings.Contains(scrubbed, s) {
					t.Errorf("secret %q survives in scrubbed %q", s, scrubbed)
				}
			}
		})
	}
}

// TestRedactProperty puts random secrets where each service's URL keeps
// its keys and checks that none survives, in Redact's output or in a
// scrubbed error text.
func TestRedactProperty(t *testing.T) {
	forms := []string{
		"slack://hook:%s@webhook?color=good",
		"slack://xoxb:%s@%s?title=x",
		"slack://%s/%s/%s",
		"telegram://110201543:%s@telegram?chats=@mao",
		"discord://%s@%s?thread_id=1",
		"teams://%s@%s/%s/%s/%s?host=contoso.webhook.office.com",
		"matrix://mao:%s@matrix.lab.org:8448/?rooms=!abc:lab.org",
		"smtp://mao:%s@smtp.lab.org:587/?from=a@lab.org&to=b@lab.org&encryption=None",
		"generic://hooks.lab.org/api/%s?token=%s&@Authorization=Bearer%%20%s&$k=%s&template=json",
		"generic+https://hooks.lab.org/hook/%s?x=%s",
		"gotify://gotify.lab.org/message?token=%s",
		"pushbullet://o.%s/%s",
		"pushover://shoutrrr:%s@%s/?devices=a",
		"zulip://bot%%40lab.org:%s@lab.zulipchat.com?stream=foo",
		"googlechat://chat.googleapis.com/v1/spaces/%s/messages?key=%s&token=%s",
		"ntfy://:%s@ntfy.sh/%s",
		"mattermost://%s@mm.lab.org/%s/chan",
		"rocketchat://u@rc.lab.org/%s/%s/chan",
		"wecom://%s",
		"notifiarr://%s?channel=1",
		"ifttt://%s/?events=a",
		"join://shoutrrr:%s@join/?devices=a",
		"bark://:%s@api.day.app",
		"signal://u:%s@sig.lab.org:8080/%s/%s",
		"opsgenie://api.opsgenie.com/%s",
		"pagerduty://events.pagerduty.com/%s",
		"lark://open.larksuite.com/%s?secret=%s",
		"generic://h.lab.org/p#%s",
		"generic://h.lab.org/?%s",
		"slack:%s",
		"%s",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
	secret := func() string {
		b := make([]byte, 12+rng.IntN(30))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(b)
	}
	for _, form := range forms {
		for range 50 {
			n := strings.Count(form, "%s")
			secrets := make([]string, n)
			args := make([]any, n)
			for i := range secrets {
				secrets[i] = secret()
				args[i] = secrets[i]
			}
			u := fmt.Sprintf(form, args...)
			got := Redact(u)
			scrubbed := Scrub(u, "error: Post \""+u+"\": "+strings.Join(secrets, ","))
			for _, s := range secrets {
				if strings.Contains(got, s) || strings.Contains(scrubbed, s) {
					t.Fatalf("secret %q survives: Redact(%q) = %q; scrubbed %q", s, u, got, scrubbed)
				}
			}
			if scheme, _, ok := strings.Cut(form, ":"); ok && !strings.HasPrefix(got, scheme+":") {
				t.Fatalf("Redact(%q) = %q lost the scheme", u, got)
			}
		}
	}
}

func TestScrubEmptyURL(t *testing.T) {
	if got := Scrub("", "dial tcp: connection refused"); got != "dial tcp: connection refused" {
		t.Fatalf("got %q", got)
	}
}

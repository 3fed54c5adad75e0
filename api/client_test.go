package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestClientRequests checks the requests and answers of the federation,
// series and notification calls: method, path, query, body and the
// decoded answer. Every write says Content-Type: application/json, even
// without a body: the API refuses writes without it.
func TestClientRequests(t *testing.T) {
	tests := []struct {
		name     string
		call     func(*Client) (any, error)
		wantReq  string // "METHOD PATH BODY"
		status   int
		answer   string
		wantResp any
	}{
		{
			name:     "run here",
			call:     func(c *Client) (any, error) { return c.RunTool(context.Background(), "t", RunRequest{}) },
			wantReq:  "POST /api/v1/tools/t/runs {}",
			status:   http.StatusAccepted,
			answer:   `[{"id":"r1","site":"a"}]`,
			wantResp: []Run{{ID: "r1", Site: "a"}},
		},
		{
			name: "run at every gpu site",
			call: func(c *Client) (any, error) {
				return c.RunTool(context.Background(), "t", RunRequest{Target: &Target{Mode: "all", Labels: map[string]string{"gpu": "yes"}}, Retries: 2})
			},
			wantReq:  `POST /api/v1/tools/t/runs {"target":{"mode":"all","labels":{"gpu":"yes"}},"retries":2}`,
			status:   http.StatusAccepted,
			answer:   `[{"id":"r1","site":"a"},{"id":"r2","site":"b"}]`,
			wantResp: []Run{{ID: "r1", Site: "a"}, {ID: "r2", Site: "b"}},
		},
		{
			name:    "sites",
			call:    func(c *Client) (any, error) { return c.Sites(context.Background()) },
			wantReq: "GET /api/v1/sites ",
			status:  http.StatusOK,
			answer:  `{"items":[{"name":"a","live":true,"runs_in_progress":2}],"invalid":[{"key":"/mao/sites/x","reason":"not JSON"}]}`,
			wantResp: List[SiteInfo]{Items: []SiteInfo{{Site: Site{Name: "a"}, Live: true, RunsInProgress: 2}},
				Invalid: []InvalidRecord{{Key: "/mao/sites/x", Reason: "not JSON"}}},
		},
		{
			name:     "federation",
			call:     func(c *Client) (any, error) { return c.Federation(context.Background()) },
			wantReq:  "GET /api/v1/federation ",
			status:   http.StatusOK,
			answer:   `{"cluster_id":"c1","leader":"a","members":[{"id":"m1","name":"a","peer_urls":["http://h:2380"],"leader":true,"health":"ok"}]}`,
			wantResp: Federation{ClusterID: "c1", Leader: "a", Members: []Member{{ID: "m1", Name: "a", PeerURLs: []string{"http://h:2380"}, Leader: true, Health: "ok"}}},
		},
		{
			name: "add site",
			call: func(c *Client) (any, error) {
				return c.AddSite(context.Background(), AddSiteRequest{Name: "b", PeerURL: "https://h:2380"})
			},
			wantReq:  `POST /api/v1/federation/sites {"name":"b","peer_url":"https://h:2380"}`,
			status:   http.StatusCreated,
			answer:   `{"site":"b","token":"maojoin1.x","expires_at":"2026-12-02T13:00:00Z","config":"[etcd]\n"}`,
			wantResp: AddSiteResult{Site: "b", Token: "maojoin1.x", ExpiresAt: time.Date(2026, 12, 2, 13, 0, 0, 0, time.UTC), Config: "[etcd]\n"},
		},
		{
			name:     "leave",
			call:     func(c *Client) (any, error) { return c.Leave(context.Background(), "b") },
			wantReq:  `POST /api/v1/federation/leave {"site":"b"}`,
			status:   http.StatusAccepted,
			answer:   `{"site":"b","voting":{"voters_now":3,"voters_after":3,"max_voters":3,"votes":false,"promotes":"c","note":"n"}}`,
			wantResp: LeaveResult{Site: "b", Voting: Voting{VotersNow: 3, VotersAfter: 3, MaxVoters: 3, Promotes: "c", Note: "n"}},
		},
		{
			name: "credentials",
			call: func(c *Client) (any, error) {
				return c.Credentials(context.Background(), CredentialsRequest{Name: "ada", ReadOnly: true})
			},
			wantReq:  `POST /api/v1/federation/credentials {"name":"ada","read_only":true}`,
			status:   http.StatusCreated,
			answer:   `{"name":"ada","user":"reader:ada","ca_cert":"C","cert":"X","key":"K","endpoints":["https://h:2379"],"prefix":"/mao/","expires_at":"2027-12-02T13:00:00Z"}`,
			wantResp: Credentials{Name: "ada", User: "reader:ada", CACert: "C", Cert: "X", Key: "K", Endpoints: []string{"https://h:2379"}, Prefix: "/mao/", ExpiresAt: time.Date(2027, 12, 2, 13, 0, 0, 0, time.UTC)},
		},
		{
			name:     "pause a schedule, without a body",
			call:     func(c *Client) (any, error) { return c.PauseSchedule(context.Background(), "s1") },
			wantReq:  "POST /api/v1/schedules/s1/pause ",
			status:   http.StatusOK,
			answer:   `{"id":"s1","paused":true}`,
			wantResp: ScheduleInfo{Schedule: Schedule{ID: "s1", Paused: true}},
		},
		{
			name:     "remove site",
			call:     func(c *Client) (any, error) { return nil, c.RemoveSite(context.Background(), "b/c") },
			wantReq:  "DELETE /api/v1/federation/sites/b%2Fc ",
			status:   http.StatusNoContent,
			wantResp: nil,
		},
		{
			name:    "series of one metric at one site",
			call:    func(c *Client) (any, error) { return c.Series(context.Background(), "gh crawler", "control", "lab-a") },
			wantReq: "GET /api/v1/tools/gh%20crawler/series?metric=control&site=lab-a ",
			status:  http.StatusOK,
			answer:  `{"items":[{"tool":"gh crawler","site":"lab-a","metric":"control","points":[{"run":"r1","time":"2025-03-14T09:26:00Z","value":5},{"run":"r2","time":"2025-03-15T09:26:00Z","value":50,"spike":true}]}]}`,
			wantResp: List[Series]{Items: []Series{{Tool: "gh crawler", Site: "lab-a", Metric: "control", Points: []SeriesPoint{
				{Run: "r1", Time: time.Date(2025, 3, 14, 9, 26, 0, 0, time.UTC), Value: 5},
				{Run: "r2", Time: time.Date(2025, 3, 15, 9, 26, 0, 0, time.UTC), Value: 50, Spike: true},
			}}}},
		},
		{
			name:     "every series of a tool",
			call:     func(c *Client) (any, error) { return c.Series(context.Background(), "t", "", "") },
			wantReq:  "GET /api/v1/tools/t/series ",
			status:   http.StatusOK,
			answer:   `{"items":[]}`,
			wantResp: List[Series]{Items: []Series{}},
		},
		{
			name:     "notifications of a tool",
			call:     func(c *Client) (any, error) { return c.Notifications(context.Background(), "t", 50) },
			wantReq:  "GET /api/v1/notifications?limit=50&tool=t ",
			status:   http.StatusOK,
			answer:   `{"items":[{"id":"n1","kind":"spike","tool":"t","site":"a","channel":"https://hooks.example.org/***","status":"sent","attempts":1,"title":"spike"}]}`,
			wantResp: List[Notification]{Items: []Notification{{ID: "n1", Kind: "spike", Tool: "t", Site: "a", Channel: "https://hooks.example.org/***", Status: "sent", Attempts: 1, Title: "spike"}}},
		},
		{
			name:     "every notification",
			call:     func(c *Client) (any, error) { return c.Notifications(context.Background(), "", 0) },
			wantReq:  "GET /api/v1/notifications ",
			status:   http.StatusOK,
			answer:   `{"items":[]}`,
			wantResp: List[Notification]{Items: []Notification{}},
		},
		{
			name: "test a URL",
			call: func(c *Client) (any, error) {
				return c.NotifyTest(context.Background(), "https://hooks.example.org/s3cret")
			},
			wantReq:  `POST /api/v1/notifications/test {"url":"https://hooks.example.org/s3cret"}`,
			status:   http.StatusOK,
			answer:   `[{"id":"n2","kind":"test","site":"a","channel":"https://hooks.example.org/***","status":"failed","attempts":3,"error":"503"}]`,
			wantResp: []Notification{{ID: "n2", Kind: "test", Site: "a", Channel: "https://hooks.example.org/***", Status: "failed", Attempts: 3, Error: "503"}},
		},
		{
			name:     "test the site's channels",
			call:     func(c *Client) (any, error) { return c.NotifyTest(context.Background(), "") },
			wantReq:  `POST /api/v1/notifications/test {}`,
			status:   http.StatusOK,
			answer:   `[{"id":"n3","kind":"test","site":"a","channel":"mailto:***@example.org","status":"sent","attempts":1}]`,
			wantResp: []Notification{{ID: "n3", Kind: "test", Site: "a", Channel: "mailto:***@example.org", Status: "sent", Attempts: 1}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var gotReq string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				gotReq = r.Method + " " + r.URL.EscapedPath() + query(r.URL.RawQuery) + " " + strings.TrimSpace(string(body))
				if ct := r.Header.Get("Content-Type"); (r.Method != http.MethodGet) != (ct == "application/json") {
					gotReq += " with Content-Type " + ct
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.answer)
			}))
			defer srv.Close()
			c, err := NewClient(srv.URL, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tc.call(c)
			if err != nil {
				t.Fatal(err)
			}
			if gotReq != tc.wantReq {
				t.Errorf("request %q, want %q", gotReq, tc.wantReq)
			}
			if !reflect.DeepEqual(got, tc.wantResp) {
				t.Errorf("answer %#v, want %#v", got, tc.wantResp)
			}
		})
	}
}

// query is "?" and the raw query, or "" without one.
func query(raw string) string {
	if raw == "" {
		return ""
	}
	return "?" + raw
}

// TestClientErrorAnswers checks that error answers become *Error with the
// server's message and status.
func TestClientErrorAnswers(t *testing.T) {
	tests := []struct {
		name     string
		call     func(*Client) error
		status   int
		answer   string
		wantMsg  string
		notFound bool
	}{
		{
			name: "series of an unknown tool",
			call: func(c *Client) error {
				_, err := c.Series(context.Background(), "nope", "", "")
				return err
			},
			status:   http.StatusNotFound,
			answer:   `{"code":"not_found","error":"tool \"nope\" not found"}`,
			wantMsg:  `tool "nope" not found`,
			notFound: true,
		},
		{
			name: "test without channels",
			call: func(c *Client) error {
				_, err := c.NotifyTest(context.Background(), "")
				return err
			},
			status:  http.StatusBadRequest,
			answer:  `{"code":"invalid","error":"the site has no notification channels; give a URL"}`,
			wantMsg: "the site has no notification channels; give a URL",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.answer)
			}))
			defer srv.Close()
			c, err := NewClient(srv.URL, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			err = tc.call(c)
			var apiErr *Error
			if !errors.As(err, &apiErr) {
				t.Fatalf("error %v, want an *Error", err)
			}
			if apiErr.Status != tc.status || apiErr.Error() != tc.wantMsg {
				t.Errorf("error %d %q, want %d %q", apiErr.Status, apiErr.Error(), tc.status, tc.wantMsg)
			}
		})
	}
}

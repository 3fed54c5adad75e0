package api

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// TestClientFederationRequests checks the requests and answers of the
// federation calls: method, path, body and the decoded answer.
func TestClientFederationRequests(t *testing.T) {
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
			name:     "sites",
			call:     func(c *Client) (any, error) { return c.Sites(context.Background()) },
			wantReq:  "GET /api/v1/sites ",
			status:   http.StatusOK,
			answer:   `[{"name":"a","live":true,"runs_in_progress":2}]`,
			wantResp: []SiteInfo{{Site: Site{Name: "a"}, Live: true, RunsInProgress: 2}},
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
				return c.AddSite(context.Background(), AddSiteRequest{Name: "b", PeerURL: "http://h:2380"})
			},
			wantReq:  `POST /api/v1/federation/sites {"name":"b","peer_url":"http://h:2380"}`,
			status:   http.StatusCreated,
			answer:   `{"member":{"id":"m2","name":"b","peer_urls":["http://h:2380"],"health":"not started"},"initial_cluster":"a=x,b=http://h:2380","config":"[etcd]\n"}`,
			wantResp: AddSiteResult{Member: Member{ID: "m2", Name: "b", PeerURLs: []string{"http://h:2380"}, Health: "not started"}, InitialCluster: "a=x,b=http://h:2380", Config: "[etcd]\n"},
		},
		{
			name:     "remove site",
			call:     func(c *Client) (any, error) { return nil, c.RemoveSite(context.Background(), "b/c") },
			wantReq:  "DELETE /api/v1/federation/sites/b%2Fc ",
			status:   http.StatusNoContent,
			wantResp: nil,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var gotReq string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				gotReq = r.Method + " " + r.URL.EscapedPath() + " " + strings.TrimSpace(string(body))
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

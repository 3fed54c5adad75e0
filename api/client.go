package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultAddr is where maoctl looks for an orchestrator when neither --addr
// nor MAO_ADDR is given.
const DefaultAddr = "http://127.0.0.1:8080"

// Error is an error answer from the API.
type Error struct {
	Status int // HTTP status code
	ErrorBody
}

func (e *Error) Error() string {
	msg := e.Message
	if len(e.Details) > 0 {
		msg += ": " + strings.Join(e.Details, "; ")
	}
	return msg
}

// Client talks to one orchestrator's REST API. The zero value is not usable;
// use NewClient.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
}

// NewClient returns a client for the orchestrator at addr (e.g.
// "http://127.0.0.1:8080" or "127.0.0.1:8080"). A non-empty token is sent as
// a bearer token. hc may be nil for http.DefaultClient.
func NewClient(addr, token string, hc *http.Client) (*Client, error) {
	if addr == "" {
		addr = DefaultAddr
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("address %q is not an http(s) URL", addr)
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: u, token: token, http: hc}, nil
}

// Addr is the orchestrator's base URL.
func (c *Client) Addr() string { return c.base.String() }

// RegisterTool stores a new tool. It fails with a 409 Error if the name is
// taken and a 400 Error listing every problem if the spec is invalid.
func (c *Client) RegisterTool(ctx context.Context, t Tool) (Tool, error) {
	var out Tool
	return out, c.do(ctx, http.MethodPost, "/tools", nil, t, &out)
}

// Tools lists the registered tools, sorted by name: every page.
func (c *Client) Tools(ctx context.Context) (List[Tool], error) {
	return every[Tool](ctx, c, "/tools", url.Values{})
}

// ToolsAs reads every tool, as Tools does, into T: a struct of the fields
// the caller uses. A list of thousands of tools decodes in half the time
// into the five fields of a table.
func ToolsAs[T any](ctx context.Context, c *Client) (List[T], error) {
	return every[T](ctx, c, "/tools", url.Values{})
}

// every reads a list that pages (by name: tools, datasets, schedules)
// whole, a page after the other.
func every[T any](ctx context.Context, c *Client, path string, q url.Values) (List[T], error) {
	var out List[T]
	q.Set("limit", "5000") // the most a page holds: fewer round trips
	for {
		var page List[T]
		if err := c.do(ctx, http.MethodGet, path, q, nil, &page); err != nil {
			return out, err
		}
		out.Items = append(out.Items, page.Items...)
		out.Invalid, out.Note = page.Invalid, page.Note
		if page.Continue == "" {
			return out, nil
		}
		q.Set("continue", page.Continue)
	}
}

// Tool returns one tool.
func (c *Client) Tool(ctx context.Context, name string) (Tool, error) {
	var out Tool
	return out, c.do(ctx, http.MethodGet, "/tools/"+url.PathEscape(name), nil, nil, &out)
}

// RemoveTool deletes a tool from the registry.
func (c *Client) RemoveTool(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/tools/"+url.PathEscape(name), nil, nil, nil)
}

// RunTool starts runs of the named tool and returns their pending
// records. Without req.Target the run runs at the orchestrator's own site;
// with one it may run elsewhere: one run for TargetSite and TargetAny (its
// Site is empty until an eligible site claims it), one per eligible site
// for TargetAll.
func (c *Client) RunTool(ctx context.Context, name string, req RunRequest) ([]Run, error) {
	var out []Run
	return out, c.do(ctx, http.MethodPost, "/tools/"+url.PathEscape(name)+"/runs", nil, req, &out)
}

// ReplayRun runs a past run again, exactly (see Replay): the new run,
// pending or started.
func (c *Client) ReplayRun(ctx context.Context, id string, req ReplayRequest) (Run, error) {
	var out Run
	return out, c.do(ctx, http.MethodPost, "/runs/"+url.PathEscape(id)+"/replay", nil, req, &out)
}

// RegisterDataset stores a new dataset.
func (c *Client) RegisterDataset(ctx context.Context, d Dataset) (Dataset, error) {
	var out Dataset
	return out, c.do(ctx, http.MethodPost, "/datasets", nil, d, &out)
}

// Datasets lists the registered datasets, sorted by name: every page.
func (c *Client) Datasets(ctx context.Context) (List[Dataset], error) {
	return every[Dataset](ctx, c, "/datasets", url.Values{})
}

// Dataset returns one dataset.
func (c *Client) Dataset(ctx context.Context, name string) (Dataset, error) {
	var out Dataset
	return out, c.do(ctx, http.MethodGet, "/datasets/"+url.PathEscape(name), nil, nil, &out)
}

// RemoveDataset deletes a dataset from the registry.
func (c *Client) RemoveDataset(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/datasets/"+url.PathEscape(name), nil, nil, nil)
}

// RunFilter selects runs; empty fields select all. It is also the query
// of GET /runs: tool, schedule, push, state, site, since (RFC 3339),
// limit and continue.
type RunFilter struct {
	Tool     string
	Schedule string
	Push     PushState // only the runs whose commit's push is in this state
	State    RunState  // only the runs in this state
	Site     string    // only the runs of this site
	Since    time.Time // only the runs created at this time or later
	// Limit is a page's size: at most this many runs (0: the server's
	// default, 100; at most 1000).
	Limit int
	// Continue is the token of the page to read: a List's Continue.
	Continue string
}

// Query is the filter as GET /runs takes it.
func (f RunFilter) Query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"tool": f.Tool, "schedule": f.Schedule, "push": string(f.Push),
		"state": string(f.State), "site": f.Site, "continue": f.Continue} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339Nano))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	return q
}

// Runs lists a page of runs, newest first: at most f.Limit, and in
// Continue the token of the next page ("" after the last).
func (c *Client) Runs(ctx context.Context, f RunFilter) (List[Run], error) {
	var out List[Run]
	return out, c.do(ctx, http.MethodGet, "/runs", f.Query(), nil, &out)
}

// CreateSchedule schedules a tool. The orchestrator assigns the ID and
// fills the defaults (its site's time zone among them).
func (c *Client) CreateSchedule(ctx context.Context, s Schedule) (ScheduleInfo, error) {
	var out ScheduleInfo
	return out, c.do(ctx, http.MethodPost, "/schedules", nil, s, &out)
}

// Schedules lists schedules, sorted by ID: every page. A non-empty tool
// filters by tool.
func (c *Client) Schedules(ctx context.Context, tool string) (List[ScheduleInfo], error) {
	q := url.Values{}
	if tool != "" {
		q.Set("tool", tool)
	}
	return every[ScheduleInfo](ctx, c, "/schedules", q)
}

// Schedule returns one schedule.
func (c *Client) Schedule(ctx context.Context, id string) (ScheduleInfo, error) {
	var out ScheduleInfo
	return out, c.do(ctx, http.MethodGet, "/schedules/"+url.PathEscape(id), nil, nil, &out)
}

// UpdateSchedule replaces a schedule's timing and options; its ID, tool
// and creation time stay. Ticks before the update are not caught up.
func (c *Client) UpdateSchedule(ctx context.Context, s Schedule) (ScheduleInfo, error) {
	var out ScheduleInfo
	return out, c.do(ctx, http.MethodPut, "/schedules/"+url.PathEscape(s.ID), nil, s, &out)
}

// PauseSchedule stops a schedule's ticks until it is resumed.
func (c *Client) PauseSchedule(ctx context.Context, id string) (ScheduleInfo, error) {
	var out ScheduleInfo
	return out, c.do(ctx, http.MethodPost, "/schedules/"+url.PathEscape(id)+"/pause", nil, nil, &out)
}

// ResumeSchedule restarts a paused schedule from its next tick; ticks
// while it was paused are not caught up.
func (c *Client) ResumeSchedule(ctx context.Context, id string) (ScheduleInfo, error) {
	var out ScheduleInfo
	return out, c.do(ctx, http.MethodPost, "/schedules/"+url.PathEscape(id)+"/resume", nil, nil, &out)
}

// RemoveSchedule deletes a schedule; the records of its runs stay.
func (c *Client) RemoveSchedule(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/schedules/"+url.PathEscape(id), nil, nil, nil)
}

// Run returns one run record.
func (c *Client) Run(ctx context.Context, id string) (Run, error) {
	var out Run
	return out, c.do(ctx, http.MethodGet, "/runs/"+url.PathEscape(id), nil, nil, &out)
}

// LogOptions select what RunLogs returns.
type LogOptions struct {
	Follow bool // keep streaming until the run ends
	Tail   int  // only the last Tail lines; 0 for all
}

// RunLogs copies a run's log (its container's stdout and stderr) to w.
// With Follow it returns once the run has ended and its record is final.
func (c *Client) RunLogs(ctx context.Context, id string, opts LogOptions, w io.Writer) error {
	q := url.Values{}
	if opts.Follow {
		q.Set("follow", "true")
	}
	if opts.Tail > 0 {
		q.Set("tail", strconv.Itoa(opts.Tail))
	}
	resp, err := c.send(ctx, http.MethodGet, "/runs/"+url.PathEscape(id)+"/logs", q, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("read logs of run %s: %w", id, err)
	}
	return nil
}

// Sites lists every site the federation has seen, live or gone, sorted
// by name.
func (c *Client) Sites(ctx context.Context) (List[SiteInfo], error) {
	var out List[SiteInfo]
	return out, c.do(ctx, http.MethodGet, "/sites", nil, nil, &out)
}

// Federation describes the etcd cluster the sites share: its members,
// their health and its leader.
func (c *Client) Federation(ctx context.Context) (Federation, error) {
	var out Federation
	return out, c.do(ctx, http.MethodGet, "/federation", nil, nil, &out)
}

// AddSite issues a join token for a new site and returns the config.ini
// lines that site needs to join, and, for a site with an etcd member of
// its own, whether that member will vote (Voting). The member is added,
// as a learner, only when the site joins with the token.
func (c *Client) AddSite(ctx context.Context, req AddSiteRequest) (AddSiteResult, error) {
	var out AddSiteResult
	return out, c.do(ctx, http.MethodPost, "/federation/sites", nil, req, &out)
}

// Credentials issues a collaborator's read-only certificate for etcd.
func (c *Client) Credentials(ctx context.Context, req CredentialsRequest) (Credentials, error) {
	var out Credentials
	return out, c.do(ctx, http.MethodPost, "/federation/credentials", nil, req, &out)
}

// Leave asks the site, which must be the one named site, to leave the
// federation for good: it stops as on SIGTERM and, once its runs are
// recorded, hands its vote to a learner if that is needed, removes its
// etcd member, its record and its etcd user.
func (c *Client) Leave(ctx context.Context, site string) (LeaveResult, error) {
	var out LeaveResult
	return out, c.do(ctx, http.MethodPost, "/federation/leave", nil, LeaveRequest{Site: site}, &out)
}

// RemoveSite removes the named site's etcd member from the cluster.
func (c *Client) RemoveSite(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/federation/sites/"+url.PathEscape(name), nil, nil, nil)
}

// Series returns the values the spike detector keeps for a tool, one
// Series per site and metric, oldest point first. A non-empty metric or
// site selects only those. It fails with a 404 Error for an unknown tool;
// a tool without values has an empty list.
func (c *Client) Series(ctx context.Context, tool, metric, site string) (List[Series], error) {
	q := url.Values{}
	if metric != "" {
		q.Set("metric", metric)
	}
	if site != "" {
		q.Set("site", site)
	}
	var out List[Series]
	return out, c.do(ctx, http.MethodGet, "/tools/"+url.PathEscape(tool)+"/series", q, nil, &out)
}

// Notifications lists what became of the notifications sent, newest
// first. A non-empty tool selects that tool's; limit > 0 returns at most
// that many.
func (c *Client) Notifications(ctx context.Context, tool string, limit int) (List[Notification], error) {
	q := url.Values{}
	if tool != "" {
		q.Set("tool", tool)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out List[Notification]
	return out, c.do(ctx, http.MethodGet, "/notifications", q, nil, &out)
}

// NotifyTest sends a test message to the channel at rawURL or, when it is
// empty, to each of the site's configured channels, and returns one
// outcome per channel. A channel that could not be reached is an outcome
// with Status "failed", not an error; it fails with a 400 Error when
// rawURL is empty and the site has no channels.
func (c *Client) NotifyTest(ctx context.Context, rawURL string) ([]Notification, error) {
	var out []Notification
	return out, c.do(ctx, http.MethodPost, "/notifications/test", nil, NotifyTestRequest{URL: rawURL}, &out)
}

// Check reads and checks every record of the federation in etcd, and
// lists those that are invalid.
func (c *Client) Check(ctx context.Context) (Check, error) {
	var out Check
	return out, c.do(ctx, http.MethodGet, "/federation/check", nil, nil, &out)
}

// Health reports whether the orchestrator and its etcd and Docker are usable.
func (c *Client) Health(ctx context.Context) (Health, error) {
	var out Health
	return out, c.do(ctx, http.MethodGet, "/health", nil, nil, &out)
}

// do sends a request with an optional JSON body and decodes a JSON answer
// into out when out is not nil.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(data)
	}
	resp, err := c.send(ctx, method, path, q, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	// Read whole, then decode: a json.Decoder grows its buffer by copies.
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// send performs a request and turns any non-2xx answer into an *Error.
func (c *Client) send(ctx context.Context, method, path string, q url.Values, body io.Reader) (*http.Response, error) {
	u := c.base.JoinPath("/api", Version, path)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	if method != http.MethodGet && method != http.MethodHead {
		// Every write says it is JSON, even without a body: the API refuses
		// writes of other types, which a web page could send.
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the orchestrator at %s: %w", c.base.Host, unwrapURLError(err))
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	apiErr := &Error{Status: resp.StatusCode}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if json.Unmarshal(data, &apiErr.ErrorBody) != nil || apiErr.Message == "" {
		apiErr.Message = fmt.Sprintf("%s %s: %s", method, path, http.StatusText(resp.StatusCode))
	}
	return nil, apiErr
}

// unwrapURLError drops net/http's "Get "URL": " prefix; the caller names
// the orchestrator already.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

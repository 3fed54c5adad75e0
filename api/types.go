package api

import (
	"time"

	"github.com/mao-research/mao/detector"
	"github.com/mao-research/mao/toolspec"
)

// Version is the API version, the path segment under /api/.
const Version = "v1"

// Registry records, shared with the orchestrator and the detector.
type (
	Tool      = toolspec.Tool
	Dataset   = toolspec.Dataset
	Resources = toolspec.Resources
	Schedule  = toolspec.Schedule
	Target    = toolspec.Target
	// Verdict is the spike detector's decision on one metric of a run.
	Verdict = detector.Verdict
)

// RunState is where a run is in its life:
// pending → running → succeeded | failed | timed_out. A scheduled run that
// retries goes back to pending between attempts. A tick that did not run
// is recorded as missed (no site was up at the time) or skipped (the
// previous run was still going and the schedule forbids overlap).
type RunState string

// The run states.
const (
	StatePending   RunState = "pending"
	StateRunning   RunState = "running"
	StateSucceeded RunState = "succeeded"
	StateFailed    RunState = "failed"
	StateTimedOut  RunState = "timed_out"
	StateMissed    RunState = "missed"
	StateSkipped   RunState = "skipped"
	// StateLost: the site running the run stopped renewing its lease
	// (it died or lost etcd for longer than its TTL). With attempts left,
	// the lost attempt is filed in Attempts and the run is pending again,
	// for another eligible site.
	StateLost RunState = "lost"
)

// Valid reports whether s is one of the run states.
func (s RunState) Valid() bool {
	switch s {
	case StatePending, StateRunning, StateSucceeded, StateFailed, StateTimedOut, StateMissed, StateSkipped, StateLost:
		return true
	}
	return false
}

// Terminal reports whether the run has ended.
func (s RunState) Terminal() bool {
	switch s {
	case StateSucceeded, StateFailed, StateTimedOut, StateMissed, StateSkipped, StateLost:
		return true
	}
	return false
}

// What started a run.
const (
	TriggerManual   = "manual"   // maoctl tool run
	TriggerSchedule = "schedule" // a schedule's tick, on time
	TriggerCatchup  = "catchup"  // a tick missed while no site ran, run late
	TriggerReplay   = "replay"   // maoctl run replay: a past run again, exactly
)

// Verdicts of a replay.
const (
	// ReplayReproduced: the replay wrote exactly the files the original
	// wrote, byte for byte.
	ReplayReproduced = "reproduced"
	// ReplayDiffers: some file differs, or one of them wrote a file the
	// other did not (Replay.Differences).
	ReplayDiffers = "differs"
	// ReplayNotCompared: the replay succeeded but the original's commit
	// could not be read to compare (Replay.Note says why).
	ReplayNotCompared = "not-compared"
)

// Replay is what a replay run (trigger replay) knows of the run it
// replays, and, once it has succeeded, how its output compares.
type Replay struct {
	// Of is the replayed run's ID; Site, ScheduledTime and Commit are its
	// site, its tick (or creation) and its data_commit_after, which the
	// replay's output is compared with. The container sees the original's
	// MAO_RUN_ID, MAO_SITE and MAO_SCHEDULED_TIME.
	Of            string    `json:"of"`
	Site          string    `json:"site"`
	ScheduledTime time.Time `json:"scheduled_time"`
	Commit        string    `json:"commit,omitempty"`
	// PushedCommit is the original's commit as pushed (Push.Commit): a
	// copy rebased onto other sites' commits, when the site's clone no
	// longer holds the original one. The replay then starts from its
	// parent and compares with it.
	PushedCommit string `json:"pushed_commit,omitempty"`

	// Verdict is ReplayReproduced, ReplayDiffers or ReplayNotCompared,
	// set when the replay succeeded; Differences are the files in which
	// its output and the original's differ (at most MaxRunFiles,
	// DifferencesTotal counts them all).
	Verdict          string           `json:"verdict,omitempty"`
	Differences      []FileDifference `json:"differences,omitempty"`
	DifferencesTotal int              `json:"differences_total,omitempty"`
	// Note says what the replay could not take from the snapshot (secret
	// env values come from the tool's current record) or why it did not
	// compare.
	Note string `json:"note,omitempty"`
}

// FileDifference is a file in which a replay's output and the original's
// differ; Original or Replay is nil where that run did not write it.
type FileDifference struct {
	Path     string       `json:"path"`
	Original *FileVersion `json:"original,omitempty"`
	Replay   *FileVersion `json:"replay,omitempty"`
}

// FileVersion is a file's size and content hash.
type FileVersion struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// ReplayRequest asks for a replay: POST /api/v1/runs/{id}/replay. Site
// is where it runs; empty: the site that ran the original.
type ReplayRequest struct {
	Site string `json:"site,omitempty"`
}

// MaxRunFiles bounds Run.Files so that a run record stays a small etcd value.
const MaxRunFiles = 100

// RunSpec is the part of what a run ran that its record does not hold
// otherwise, snapshotted by its site when it prepared the run: with the
// image's digest or ID, the network, the input dataset's commit and the
// data commits on the record it is the run's provenance (see Provenance).
type RunSpec struct {
	Command []string `json:"command,omitempty"`
	// Env is the container's env from the tool and the schedule (MAO_*
	// variables aside), the values of the tool's SecretEnv keys as "***".
	Env       map[string]string   `json:"env,omitempty"`
	SecretEnv []string            `json:"secret_env,omitempty"`
	Resources *toolspec.Resources `json:"resources,omitempty"`
	// Memory is the container's memory limit in bytes as applied (the
	// site's default when the tool sets none); 0 is no limit.
	Memory  int64  `json:"memory,omitempty"`
	User    string `json:"user,omitempty"`
	Timeout string `json:"timeout"`
	// SpecRevision is the etcd revision of the tool record the run was
	// prepared from; Version is the running orchestrator's.
	SpecRevision int64  `json:"spec_revision,omitempty"`
	Version      string `json:"version,omitempty"`
}

// Run is one execution of a tool at a site.
type Run struct {
	ID      string   `json:"id"`
	Tool    string   `json:"tool"`
	Site    string   `json:"site"`
	State   RunState `json:"state"`
	Reason  string   `json:"reason,omitempty"`  // why it failed or timed out, in words
	Trigger string   `json:"trigger"`           // TriggerManual, TriggerSchedule, TriggerCatchup or TriggerReplay
	Image   string   `json:"image"`             // the reference from the tool spec
	Network string   `json:"network,omitempty"` // the container network

	// RequestedBy is the name of the API token that asked for a manual
	// run; empty for a tick and when the API needs no token.
	RequestedBy string `json:"requested_by,omitempty"`

	ImageID     string `json:"image_id,omitempty"`     // the local image ID that ran
	ImageDigest string `json:"image_digest,omitempty"` // repo digest, when the image came from a registry
	ExitCode    *int   `json:"exit_code,omitempty"`    // set once the container has exited

	DataRepo         string `json:"data_repo"`
	DataCommitBefore string `json:"data_commit_before,omitempty"`
	DataCommitAfter  string `json:"data_commit_after,omitempty"`
	InputDataset     string `json:"input_dataset,omitempty"`
	InputCommit      string `json:"input_commit,omitempty"`

	// Schedule is the schedule whose tick this run is; ScheduledTime is
	// the tick, which is also in the run ID.
	// Target is where the run may run, for runs that were not started
	// at the site that was asked (absent: that site). Site is empty while
	// a run waits for an eligible site to claim it.
	Target *Target `json:"target,omitempty"`

	Schedule      string            `json:"schedule,omitempty"`
	ScheduledTime *time.Time        `json:"scheduled_time,omitempty"`
	Env           map[string]string `json:"env,omitempty"` // the schedule's env, added to the tool's

	// Attempt is the current attempt, from 1; MaxAttempts is 1 + the
	// schedule's retries. Between attempts the run is pending until
	// RetryAt. Attempts holds the earlier, failed attempts.
	Attempt     int        `json:"attempt,omitempty"`
	MaxAttempts int        `json:"max_attempts,omitempty"`
	RetryDelay  string     `json:"retry_delay,omitempty"`
	RetryAt     *time.Time `json:"retry_at,omitempty"`
	Attempts    []Attempt  `json:"attempts,omitempty"`

	// Verdicts are the spike detector's decisions on the metrics of a
	// successful run's output (one no-data verdict when it has none).
	Verdicts []Verdict `json:"verdicts,omitempty"`

	// Spec is what the run ran, as its site snapshotted it when it
	// prepared the run (not today's tool): see RunSpec.
	Spec *RunSpec `json:"spec,omitempty"`
	// Replay is set on a replay (trigger replay): the run it replays,
	// and how its output compares.
	Replay *Replay `json:"replay,omitempty"`

	// Files the run added or changed in its data repository, relative to
	// the repository root; at most MaxRunFiles, FilesTotal counts them all.
	Files      []string `json:"files,omitempty"`
	FilesTotal int      `json:"files_total,omitempty"`

	CreatedAt          time.Time  `json:"created_at"`
	StartedAt          *time.Time `json:"started_at,omitempty"`
	ContainerStartedAt *time.Time `json:"container_started_at,omitempty"` // when the engine started the container
	FinishedAt         *time.Time `json:"finished_at,omitempty"`

	// Push is the way of a successful run's commit to its tool's data
	// repository; absent when nothing is pushed (the tool's push is off,
	// the run committed nothing, or it did not succeed).
	Push *Push `json:"push,omitempty"`
}

// PushState is where a successful run's commit is on its way to the data
// repository: pending → pushed | conflict, with failed between while
// attempts fail (it is retried until it is pushed).
type PushState string

// The push states.
const (
	PushPending  PushState = "pending"  // queued in the site's clone, not pushed yet
	PushPushed   PushState = "pushed"   // on the branch
	PushConflict PushState = "conflict" // on mao/<site>: a path it wrote was changed on the branch too
	PushFailed   PushState = "failed"   // attempts failed (Reason); it is retried
)

// Valid reports whether s is one of the push states.
func (s PushState) Valid() bool {
	switch s {
	case PushPending, PushPushed, PushConflict, PushFailed:
		return true
	}
	return false
}

// Done reports whether the commit has landed on the remote.
func (s PushState) Done() bool { return s == PushPushed || s == PushConflict }

// Push is a run's commit on its way to its tool's data repository.
type Push struct {
	State PushState `json:"state"`
	// Branch is the remote branch the commit went to: the tool's branch
	// (pushed), or mao/<site> (conflict).
	Branch string `json:"branch,omitempty"`
	// Commit is the commit on the remote: the run's own
	// (data_commit_after), or a copy of it rebased onto the commits other
	// sites pushed first.
	Commit string `json:"commit,omitempty"`
	// Reason is why the latest attempt failed.
	Reason string `json:"reason,omitempty"`
	// Attempts counts the attempts that failed.
	Attempts int        `json:"attempts,omitempty"`
	QueuedAt time.Time  `json:"queued_at"`
	FailedAt *time.Time `json:"failed_at,omitempty"` // the first failed attempt
	PushedAt *time.Time `json:"pushed_at,omitempty"` // when it landed
}

// Attempt is one earlier, failed attempt of a run that was retried.
type Attempt struct {
	Attempt    int        `json:"attempt"`
	State      RunState   `json:"state"`
	Reason     string     `json:"reason,omitempty"`
	ExitCode   *int       `json:"exit_code,omitempty"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

// ScheduleInfo is a schedule with what the orchestrator knows of it.
type ScheduleInfo struct {
	Schedule
	NextRun  *time.Time `json:"next_run,omitempty"` // the next tick; absent while paused
	LastRun  *Run       `json:"last_run,omitempty"` // the run of the latest tick so far
	Orphaned bool       `json:"orphaned,omitempty"` // its tool is no longer registered
}

// Site is an orchestrator's membership record. It lives in etcd under a
// lease, so it disappears when the site stops renewing it.
type Site struct {
	Name    string `json:"name"`
	APIAddr string `json:"api_addr"`
	// FederationAddr is where other sites reach this one over mutual TLS
	// (https://host:port): logs of its runs, joins of new sites. Empty for
	// a site without the federation's certificates (an external etcd).
	FederationAddr string            `json:"federation_addr,omitempty"`
	Version        string            `json:"version"`
	OS             string            `json:"os"`
	Arch           string            `json:"arch"`
	CPUs           int               `json:"cpus"`
	MemoryBytes    uint64            `json:"memory_bytes"`
	DockerVersion  string            `json:"docker_version"`
	Labels         map[string]string `json:"labels,omitempty"`
	StartedAt      time.Time         `json:"started_at"`
	// Instance is the ID of the site's data directory, the same in every
	// life of the site: an orchestrator that restarts after a crash knows
	// its previous life's record by it. Empty in records of older
	// versions.
	Instance string `json:"instance,omitempty"`
}

// SiteInfo is a site as GET /api/v1/sites lists it: its last published
// record, whether it is live, and its work.
type SiteInfo struct {
	Site
	Live           bool      `json:"live"`             // its lease is alive
	LastSeen       time.Time `json:"last_seen"`        // its last heartbeat; now, for a live site
	RunsInProgress int       `json:"runs_in_progress"` // pending or running runs it holds
	// Offline is set in the row of the asked site while etcd does not
	// answer it: it goes on with its own runs and journals their records
	// (see Health.Offline); Journaled counts the records not yet in etcd.
	Offline   bool `json:"offline,omitempty"`
	Journaled int  `json:"journaled,omitempty"`
}

// RunRequest is the optional body of POST /api/v1/tools/{name}/runs.
// Without a target the run runs at the site that was asked.
type RunRequest struct {
	Target *Target `json:"target,omitempty"`
	// Retries are extra attempts after a failed or lost one; a lost
	// attempt of an any-site run is retried at another site.
	Retries int `json:"retries,omitempty"`
}

// Member is one etcd member of the federation's cluster.
type Member struct {
	ID         string   `json:"id"` // hex, as etcdctl prints it
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peer_urls"`
	ClientURLs []string `json:"client_urls,omitempty"` // empty until the member has started
	Leader     bool     `json:"leader,omitempty"`
	// Learner: the member holds every record but does not vote (it does
	// not count towards quorum).
	Learner bool `json:"learner,omitempty"`
	// Witness: the member is a witness's (orchestrator -witness), which
	// runs an etcd member and nothing else.
	Witness bool `json:"witness,omitempty"`
	// Health is "ok", "not started" (added but not yet joined), or the
	// error of asking the member for its status.
	Health  string `json:"health"`
	Version string `json:"version,omitempty"` // the member's etcd version
	// DBSize and DBSizeInUse are the bytes of the member's database file
	// and those of it in use, as it answered its status.
	DBSize      int64 `json:"db_size,omitempty"`
	DBSizeInUse int64 `json:"db_size_in_use,omitempty"`
	DBQuota     int64 `json:"db_quota,omitempty"` // the member's quota (etcd 3.6 and later say it)
	// Alarms are the member's etcd alarms, such as NOSPACE (the database
	// reached its quota: etcd takes no more writes) or CORRUPT.
	Alarms []string `json:"alarms,omitempty"`
}

// Federation is the answer of GET /api/v1/federation: the etcd cluster
// the sites share.
type Federation struct {
	ClusterID string   `json:"cluster_id"`
	Leader    string   `json:"leader,omitempty"` // the leader's member name; empty without quorum
	Members   []Member `json:"members"`
	// Voters is the number of voting members (members but learners).
	Voters int `json:"voters"`
	// MaxVoters is the most voters the answering site keeps
	// ([federation] max_voters); 0 for a site on an external etcd, whose
	// members are its administrators' business.
	MaxVoters int `json:"max_voters,omitempty"`
	// Warnings say what threatens the federation's quorum, in words.
	Warnings []string `json:"warnings,omitempty"`
}

// Voting says what becomes of the votes in the federation's etcd when a
// site joins with a member of its own (AddSiteResult) or leaves
// (LeaveResult).
type Voting struct {
	VotersNow   int  `json:"voters_now"`   // voting members now
	VotersAfter int  `json:"voters_after"` // once the site has joined or left, and the learners the policy lets vote have promoted themselves
	MaxVoters   int  `json:"max_voters"`   // [federation] max_voters of the answering site
	Votes       bool `json:"votes"`        // for a joining site: its member will vote
	// Promotes names the learner that takes a leaving voter's place.
	Promotes string `json:"promotes,omitempty"`
	// Note says the above in words; Warning, when there is one, is a
	// danger to the quorum, such as an even number of voters.
	Note    string `json:"note"`
	Warning string `json:"warning,omitempty"`
}

// LeaveRequest is the body of POST /api/v1/federation/leave: Site names
// the site asked, as a check that it is the one meant to leave.
type LeaveRequest struct {
	Site string `json:"site"`
}

// LeaveResult is the answer of POST /api/v1/federation/leave: the site
// asked has begun to leave the federation for good.
type LeaveResult struct {
	Site   string `json:"site"`
	Voting Voting `json:"voting"`
}

// AddSiteRequest is the body of POST /api/v1/federation/sites: it lets a
// new site that runs an embedded etcd member join the federation.
type AddSiteRequest struct {
	Name    string `json:"name"`     // the new site's name, also its member name
	PeerURL string `json:"peer_url"` // where the new member will listen for peers (https)
	// ClientURL is where the new member will serve clients; default
	// https://127.0.0.1:2379.
	ClientURL string `json:"client_url,omitempty"`
}

// AddSiteResult is the answer of POST /api/v1/federation/sites: a join
// token for the new site, good once, until ExpiresAt.
type AddSiteResult struct {
	Site      string    `json:"site"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	// Config is the config.ini lines the new site needs, ready to paste.
	Config string `json:"config"`
	// Voting, for a site with a member of its own, says whether that
	// member will vote.
	Voting *Voting `json:"voting,omitempty"`
}

// CredentialsRequest is the body of POST /api/v1/federation/credentials: a
// certificate for a collaborator who reads the federation's etcd directly.
type CredentialsRequest struct {
	Name     string `json:"name"`      // the collaborator, e.g. ada; their etcd user is reader:<name>
	ReadOnly bool   `json:"read_only"` // must be true: only read-only credentials are issued
}

// Credentials is a collaborator's client certificate for etcd, with what
// they need to use it: PEM files and the cluster's endpoints.
type Credentials struct {
	Name      string    `json:"name"`
	User      string    `json:"user"`    // the etcd user, the certificate's common name
	CACert    string    `json:"ca_cert"` // verifies etcd's members
	Cert      string    `json:"cert"`
	Key       string    `json:"key"`
	Endpoints []string  `json:"endpoints"`
	Prefix    string    `json:"prefix"`
	ExpiresAt time.Time `json:"expires_at"`
}

// SeriesPoint is one run's value of a metric.
type SeriesPoint struct {
	Run   string    `json:"run"`
	Time  time.Time `json:"time"` // when the run was requested (its tick, for a scheduled run)
	Value float64   `json:"value"`
	Spike bool      `json:"spike,omitempty"`
}

// Series is the values of one metric of one tool at one site, oldest
// first, as the spike detector keeps them (at most [detector]
// series_length points).
type Series struct {
	Tool   string        `json:"tool"`
	Site   string        `json:"site"`
	Metric string        `json:"metric"`
	Points []SeriesPoint `json:"points"`
}

// Notification is what became of one notification to one channel.
type Notification struct {
	ID       string `json:"id"`
	Kind     string `json:"kind"` // spike, spike_resolved, run_failed, run_timed_out, run_lost, run_recovered, push_failed, test
	Tool     string `json:"tool,omitempty"`
	Site     string `json:"site"` // the site that sent it
	Run      string `json:"run,omitempty"`
	Metric   string `json:"metric,omitempty"`
	Channel  string `json:"channel"` // the channel's URL with its secrets replaced by ***
	Status   string `json:"status"`  // sent or failed
	Attempts int    `json:"attempts"`
	Error    string `json:"error,omitempty"`
	Title    string `json:"title"`

	CreatedAt  time.Time `json:"created_at"`
	FinishedAt time.Time `json:"finished_at"`
}

// NotifyTestRequest is the body of POST /api/v1/notifications/test: it
// sends a test message to URL, or, without one, to the site's channels.
type NotifyTestRequest struct {
	URL string `json:"url,omitempty"`
}

// Health is the answer of GET /api/v1/health. GET /healthz, which needs
// no token, answers only its Status.
type Health struct {
	// Status is "ok", or "degraded" when etcd (e.g. it lost quorum) or
	// Docker does not answer (then writes fail with 503 until it is
	// back), when etcd has raised an alarm such as NOSPACE (Etcd says
	// which; writes fail until the site has recovered), or when the site
	// has met invalid records in etcd.
	Status string `json:"status"`
	Site   string `json:"site"`
	Etcd   string `json:"etcd"`   // "ok" or the error
	Docker string `json:"docker"` // "ok" or the error
	// InvalidRecords counts the records in etcd that this site has read
	// and left out as invalid (GET /api/v1/federation/check lists them).
	InvalidRecords int `json:"invalid_records,omitempty"`
	// Offline is set while etcd does not answer the site: it goes on with
	// the runs no other site may take (its --site schedules' ticks, its own
	// runs of --all schedules, runs asked of it through its API), writes
	// their records to a journal in its data directory, and replays them
	// into etcd once it answers. Journaled counts the records in the
	// journal not yet in etcd (being replayed, when not offline).
	Offline   bool `json:"offline,omitempty"`
	Journaled int  `json:"journaled,omitempty"`
}

// List is the answer of a list route: the records, and the keys under
// the same etcd directory whose values are not valid records of their
// kind (anyone with a certificate may write etcd): they are left out of
// Items, never trusted, and named here so that someone fixes or deletes
// them.
type List[T any] struct {
	Items   []T             `json:"items"`
	Invalid []InvalidRecord `json:"invalid,omitempty"`
	// Note, when set, says why Items are not the whole list: the site
	// answered from what it knows itself, etcd not answering it.
	Note string `json:"note,omitempty"`
	// Continue, when set, is the token of the next page (a list that
	// pages: GET /runs); absent after the last page.
	Continue string `json:"continue,omitempty"`
}

// InvalidRecord is a key in etcd whose value mao refuses, and why.
type InvalidRecord struct {
	Key    string `json:"key"`
	Reason string `json:"reason"`
}

// Check is the answer of GET /api/v1/federation/check: every record
// under the federation's prefix read and checked as the API checks its
// input.
type Check struct {
	Records int             `json:"records"` // how many were read
	Invalid []InvalidRecord `json:"invalid"`
}

// HopHeader marks a request that one site makes of another on behalf of
// one of its users (a log read from the site that holds it); its value is
// the calling site. A request that carries it is never passed on again.
const HopHeader = "X-Mao-Hop"

// Error codes in error bodies; each maps to one HTTP status.
const (
	CodeInvalid      = "invalid"      // 400
	CodeUnauthorized = "unauthorized" // 401
	// CodeForbidden: the token is valid but its scope does not allow the
	// request (the message names the scope needed), or a browser sent the
	// request from another origin.
	CodeForbidden   = "forbidden"   // 403
	CodeNotFound    = "not_found"   // 404
	CodeConflict    = "conflict"    // 409
	CodeUnsupported = "unsupported" // 415: a write without Content-Type: application/json
	// CodeMisdirected: the Host header names neither this site nor one of
	// its [api] hostnames (a DNS-rebinding attempt, or a missing name).
	CodeMisdirected = "misdirected" // 421
	CodeUnavailable = "unavailable" // 503
	// CodeFull: etcd's database reached its quota (NOSPACE) and refuses
	// writes until space is freed.
	CodeFull     = "full"     // 507
	CodeInternal = "internal" // 500
)

// ErrorBody is the JSON body of every error response.
type ErrorBody struct {
	Code    string   `json:"code"`
	Message string   `json:"error"`
	Details []string `json:"details,omitempty"` // one line per invalid field
}

// Provenance is what produced a run's output, in one place: the run's
// identity, what it ran (its Spec snapshot and the image that ran) and the
// commits it read and wrote. maoctl run provenance prints it.
type Provenance struct {
	Run           string     `json:"run"`
	Tool          string     `json:"tool"`
	Site          string     `json:"site"`
	Trigger       string     `json:"trigger"`
	ScheduledTime *time.Time `json:"scheduled_time,omitempty"`

	Image       string `json:"image"`
	ImageID     string `json:"image_id,omitempty"`
	ImageDigest string `json:"image_digest,omitempty"`
	Network     string `json:"network,omitempty"`
	RunSpec

	InputDataset     string `json:"input_dataset,omitempty"`
	InputCommit      string `json:"input_commit,omitempty"`
	DataRepo         string `json:"data_repo"`
	DataCommitBefore string `json:"data_commit_before,omitempty"`
	DataCommitAfter  string `json:"data_commit_after,omitempty"`
}

// ProvenanceOf is run's provenance; ok is false for a run with no
// snapshot (it never got as far as preparing its container, or its site
// predates snapshots), whose Env is then the schedule's env on the record.
func ProvenanceOf(run Run) (p Provenance, ok bool) {
	p = Provenance{Run: run.ID, Tool: run.Tool, Site: run.Site, Trigger: run.Trigger, ScheduledTime: run.ScheduledTime,
		Image: run.Image, ImageID: run.ImageID, ImageDigest: run.ImageDigest, Network: run.Network,
		InputDataset: run.InputDataset, InputCommit: run.InputCommit,
		DataRepo: run.DataRepo, DataCommitBefore: run.DataCommitBefore, DataCommitAfter: run.DataCommitAfter}
	if run.Spec == nil {
		p.Env = run.Env // the schedule's, all a record without a snapshot knows
		return p, false
	}
	p.RunSpec = *run.Spec
	return p, true
}

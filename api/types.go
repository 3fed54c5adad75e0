package api

import (
	"time"

	"github.com/mao-research/mao/toolspec"
)

// Version is the API version, the path segment under /api/.
const Version = "v1"

// Registry records, shared with the orchestrator and the detector.
type (
	Tool      = toolspec.Tool
	Dataset   = toolspec.Dataset
	Resources = toolspec.Resources
)

// RunState is where a run is in its life:
// pending → running → succeeded | failed | timed_out.
type RunState string

// The run states.
const (
	StatePending   RunState = "pending"
	StateRunning   RunState = "running"
	StateSucceeded RunState = "succeeded"
	StateFailed    RunState = "failed"
	StateTimedOut  RunState = "timed_out"
)

// Terminal reports whether the run has ended.
func (s RunState) Terminal() bool {
	return s == StateSucceeded || s == StateFailed || s == StateTimedOut
}

// MaxRunFiles bounds Run.Files so that a run record stays a small etcd value.
const MaxRunFiles = 100

// Run is one execution of a tool at a site.
type Run struct {
	ID      string   `json:"id"`
	Tool    string   `json:"tool"`
	Site    string   `json:"site"`
	State   RunState `json:"state"`
	Reason  string   `json:"reason,omitempty"`  // why it failed or timed out, in words
	Trigger string   `json:"trigger"`           // "manual"
	Image   string   `json:"image"`             // the reference from the tool spec
	Network string   `json:"network,omitempty"` // the container network

	ImageID     string `json:"image_id,omitempty"`     // the local image ID that ran
	ImageDigest string `json:"image_digest,omitempty"` // repo digest, when the image came from a registry
	ExitCode    *int   `json:"exit_code,omitempty"`    // set once the container has exited

	DataRepo         string `json:"data_repo"`
	DataCommitBefore string `json:"data_commit_before,omitempty"`
	DataCommitAfter  string `json:"data_commit_after,omitempty"`
	InputDataset     string `json:"input_dataset,omitempty"`
	InputCommit      string `json:"input_commit,omitempty"`

	// Files the run added or changed in its data repository, relative to
	// the repository root; at most MaxRunFiles, FilesTotal counts them all.
	Files      []string `json:"files,omitempty"`
	FilesTotal int      `json:"files_total,omitempty"`

	CreatedAt  time.Time  `json:"created_at"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

// Site is an orchestrator's membership record. It lives in etcd under a
// lease, so it disappears when the site stops renewing it.
type Site struct {
	Name          string            `json:"name"`
	APIAddr       string            `json:"api_addr"`
	Version       string            `json:"version"`
	OS            string            `json:"os"`
	Arch          string            `json:"arch"`
	CPUs          int               `json:"cpus"`
	MemoryBytes   uint64            `json:"memory_bytes"`
	DockerVersion string            `json:"docker_version"`
	Labels        map[string]string `json:"labels,omitempty"`
	StartedAt     time.Time         `json:"started_at"`
}

// Health is the answer of GET /api/v1/health.
type Health struct {
	Status string `json:"status"` // "ok" or "degraded"
	Site   string `json:"site"`
	Etcd   string `json:"etcd"`   // "ok" or the error
	Docker string `json:"docker"` // "ok" or the error
}

// Error codes in error bodies; each maps to one HTTP status.
const (
	CodeInvalid      = "invalid"      // 400
	CodeUnauthorized = "unauthorized" // 401
	CodeNotFound     = "not_found"    // 404
	CodeConflict     = "conflict"     // 409
	CodeUnavailable  = "unavailable"  // 503
	CodeInternal     = "internal"     // 500
)

// ErrorBody is the JSON body of every error response.
type ErrorBody struct {
	Code    string   `json:"code"`
	Message string   `json:"error"`
	Details []string `json:"details,omitempty"` // one line per invalid field
}

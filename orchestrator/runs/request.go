package runs

import (
	"time"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/toolspec"
)

// Request is a run waiting for a site to claim it: a run asked for at
// another site, an any-site run, or a lost run to run again. Its record
// exists, pending with no site, until a site claims it.
type Request struct {
	Run    string          `json:"run"`
	Tool   string          `json:"tool"`
	Target toolspec.Target `json:"target"`
	// FanOut marks one of the runs of an --all target: the named site
	// runs it if the tool's image is usable there, else records it
	// skipped.
	FanOut    bool      `json:"fan_out,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// RequestOf is the request of a run that waits for a site (see Waiting),
// made at: when the run was asked for, or when it was lost. ok is false for
// a run that does not wait.
func RequestOf(r api.Run, at time.Time) (req Request, ok bool) {
	if !Waiting(r) {
		return Request{}, false
	}
	req = Request{Run: r.ID, Tool: r.Tool, CreatedAt: at.UTC()}
	if r.Target != nil {
		req.Target = *r.Target
	}
	if id, err := Parse(r.ID, r.Schedule, r.Tool); err == nil && id.Site != "" && req.Target.EffectiveMode() == toolspec.TargetSite {
		req.FanOut = true
	}
	return req, true
}

// Deletion is a run record's deletion (its schedule's history was pruned),
// as a watch of the store reports it: the run and the store revision it
// was deleted at, from which a watch that failed goes on.
type Deletion struct {
	Run string
	Rev int64
}

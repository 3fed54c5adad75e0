package httpapi

import (
	"slices"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/notify"
	"github.com/mao-research/mao/toolspec"
)

// shown is a record as the API shows it, its secrets hidden: a tool's
// channel URLs, the values of its secret_env keys (also in a run's
// schedule env), and the credentials that git URLs of records written before
// mao refused them may hold (a tool's data_repo and code_repo, a dataset's
// url, a run's data_repo and the reasons, its push's too, that may quote
// it). Every answer
// goes through it (answer), so a new endpoint cannot forget it.
func shown(v any) any {
	switch v := v.(type) {
	case toolspec.Tool:
		return shownTool(v)
	case []toolspec.Tool:
		return each(v, shownTool)
	case toolspec.Dataset:
		return shownDataset(v)
	case []toolspec.Dataset:
		return each(v, shownDataset)
	case api.Run:
		return shownRun(v)
	case []api.Run:
		return each(v, shownRun)
	case api.ScheduleInfo:
		return shownSchedule(v)
	case []api.ScheduleInfo:
		return each(v, shownSchedule)
	}
	return v
}

func each[T any](list []T, show func(T) T) []T {
	if list == nil {
		return nil
	}
	out := make([]T, len(list))
	for i, v := range list {
		out[i] = show(v)
	}
	return out
}

func shownTool(t toolspec.Tool) toolspec.Tool {
	t.DataRepo, t.CodeRepo = toolspec.RedactURL(t.DataRepo), toolspec.RedactURL(t.CodeRepo)
	if len(t.SecretEnv) > 0 {
		t.Env = t.MaskSecrets(t.Env)
	}
	if len(t.Notify) > 0 {
		t.Notify = each(t.Notify, notify.Redact)
	}
	return t
}

func shownDataset(d toolspec.Dataset) toolspec.Dataset {
	d.URL = toolspec.RedactURL(d.URL)
	return d
}

func shownRun(r api.Run) api.Run {
	r.DataRepo, r.Reason = toolspec.RedactURL(r.DataRepo), toolspec.RedactText(r.Reason)
	if r.Spec != nil && len(r.Spec.SecretEnv) > 0 && len(r.Env) > 0 {
		// The schedule's env, which the record keeps to run the tick:
		// its secret values as its snapshot shows them.
		r.Env = (&toolspec.Tool{SecretEnv: r.Spec.SecretEnv}).MaskSecrets(r.Env)
	}
	if len(r.Attempts) > 0 {
		r.Attempts = slices.Clone(r.Attempts)
		for i := range r.Attempts {
			r.Attempts[i].Reason = toolspec.RedactText(r.Attempts[i].Reason)
		}
	}
	if r.Push != nil {
		p := *r.Push
		p.Reason = toolspec.RedactText(p.Reason)
		r.Push = &p
	}
	return r
}

func shownSchedule(s api.ScheduleInfo) api.ScheduleInfo {
	if s.LastRun != nil {
		last := shownRun(*s.LastRun)
		s.LastRun = &last
	}
	return s
}

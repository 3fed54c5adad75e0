package notify

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// The default templates: readable plain text, which every channel shows.
const (
	DefaultTitle = `[mao] {{.Summary}}`
	DefaultBody  = `{{.Summary}}.

{{with .Tool}}Tool: {{.}}
{{end}}{{with .Site}}Site: {{.}}
{{end}}{{with .RunID}}Run: {{.}}
{{end}}{{with .State}}State: {{.}}
{{end}}{{with .Metric}}Metric: {{.}}
{{end}}{{with .Value}}Value: {{num .}}
{{end}}{{with .Baseline}}Baseline: {{num .}}
{{end}}{{if or .Score .Threshold}}Score: {{num .Score}} (threshold {{num .Threshold}})
{{end}}{{with .Method}}Method: {{.}}
{{end}}{{if gt .Failures 1}}Failures in a row: {{.Failures}}
{{end}}{{with .Reason}}Reason: {{.}}
{{end}}{{if not .Time.IsZero}}Time: {{.Time.UTC.Format "2006-01-02 15:04:05 UTC"}}
{{end}}{{with .Logs}}Logs: {{.}}
{{end}}`
)

// Templates render events into messages.
type Templates struct {
	title, body *template.Template
}

// NewTemplates parses the title and body templates, Go text/template
// source over the fields of Event (and {{.Summary}}); "" means the
// default. Besides the built-in functions (printf, ...), "num" prints a
// number, *float64 or float64, or "-" when there is none.
//
// A template that does not parse, or fails on an event with every field
// set (an unknown field, say), is an error.
func NewTemplates(title, body string) (*Templates, error) {
	if title == "" {
		title = DefaultTitle
	}
	if body == "" {
		body = DefaultBody
	}
	t := &Templates{}
	var err error
	if t.title, err = parse("title", title); err != nil {
		return nil, err
	}
	if t.body, err = parse("body", body); err != nil {
		return nil, err
	}
	v := 1.0
	sample := Event{Kind: KindSpike, Tool: "tool", Site: "site", RunID: "run", Metric: "metric", Value: &v, Baseline: &v,
		Score: &v, Threshold: 1, Method: "method", Reason: "reason", State: "failed", Failures: 2, Logs: "logs", Time: time.Unix(0, 0)}
	if _, err := t.Render(sample); err != nil {
		return nil, err
	}
	return t, nil
}

func parse(name, src string) (*template.Template, error) {
	t, err := template.New(name).Funcs(template.FuncMap{"num": num}).Parse(src)
	if err != nil {
		return nil, fmt.Errorf("parse %s template: %w", name, err)
	}
	return t, nil
}

// Render renders an event. The title is one line: its runs of white space,
// newlines included, become one space.
func (t *Templates) Render(e Event) (Message, error) {
	var title, body strings.Builder
	if err := t.title.Execute(&title, e); err != nil {
		return Message{}, fmt.Errorf("render title: %w", err)
	}
	if err := t.body.Execute(&body, e); err != nil {
		return Message{}, fmt.Errorf("render body: %w", err)
	}
	return Message{
		Title: strings.Join(strings.Fields(title.String()), " "),
		Body:  strings.TrimRight(body.String(), " \t\n"),
	}, nil
}

// num prints a number for people: whole numbers in full, others with six
// significant digits; "-" for a nil pointer or a value that is no number.
func num(v any) string {
	var f float64
	switch x := v.(type) {
	case *float64:
		if x == nil {
			return "-"
		}
		f = *x
	case float64:
		f = x
	case int:
		f = float64(x)
	default:
		return "-"
	}
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.FormatFloat(f, 'f', 0, 64)
	}
	return strconv.FormatFloat(f, 'g', 6, 64)
}

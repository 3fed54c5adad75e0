package toolspec

import (
	"fmt"
	"strings"
)

// FieldError is one problem with one field of a record.
type FieldError struct {
	Field   string // JSON name of the field, e.g. "resources.memory" or "env[9X]"
	Problem string // what is wrong, in words
}

func (e FieldError) Error() string { return e.Field + ": " + e.Problem }

// ValidationError holds every problem found in a record at once.
type ValidationError struct {
	Kind   string // "tool" or "dataset"
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	msgs := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		msgs[i] = f.Error()
	}
	return fmt.Sprintf("invalid %s: %s", e.Kind, strings.Join(msgs, "; "))
}

// Unwrap exposes each field problem to errors.Is and errors.As.
func (e *ValidationError) Unwrap() []error {
	errs := make([]error, len(e.Fields))
	for i, f := range e.Fields {
		errs[i] = f
	}
	return errs
}

// problems collects field errors while a record is checked.
type problems struct {
	kind   string
	fields []FieldError
}

func (p *problems) add(field, format string, args ...any) {
	p.fields = append(p.fields, FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
}

// check records problem under field when err is not nil.
func (p *problems) check(field string, err error) {
	if err != nil {
		p.add(field, "%s", err.Error())
	}
}

func (p *problems) err() error {
	if len(p.fields) == 0 {
		return nil
	}
	return &ValidationError{Kind: p.kind, Fields: p.fields}
}

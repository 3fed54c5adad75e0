package errs

import "errors"

// The error kinds.
var (
	ErrInvalid     = errors.New("invalid")                              // 400
	ErrForbidden   = errors.New("forbidden")                            // 403
	ErrNotFound    = errors.New("not found")                            // 404
	ErrExists      = errors.New("already exists")                       // 409
	ErrInUse       = errors.New("in use")                               // 409
	ErrChanged     = errors.New("changed since it was read; try again") // 409
	ErrConflict    = errors.New("cannot be done in the current state")  // 409
	ErrUnavailable = errors.New("unavailable")                          // 503
	ErrFull        = errors.New("out of space")                         // 507
)

// New returns an error with message msg that is of the given kind
// (errors.Is(err, kind) holds).
func New(kind error, msg string) error { return &kindError{msg: msg, kind: kind} }

type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

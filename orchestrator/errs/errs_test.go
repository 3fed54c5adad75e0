package errs

import (
	"errors"
	"fmt"
	"testing"
)

func TestNew(t *testing.T) {
	err := New(ErrUnavailable, "etcd unavailable")
	wrapped := fmt.Errorf("save run: %w", err)
	if !errors.Is(wrapped, ErrUnavailable) || errors.Is(wrapped, ErrNotFound) {
		t.Fatalf("kind lost: %v", wrapped)
	}
	if !errors.Is(wrapped, err) || wrapped.Error() != "save run: etcd unavailable" {
		t.Fatalf("message: %q", wrapped.Error())
	}
}

package randid

import (
	"regexp"
	"testing"
)

func TestHex(t *testing.T) {
	a, b := Hex(3), Hex(3)
	if !regexp.MustCompile(`^[0-9a-f]{6}$`).MatchString(a) || a == b {
		t.Fatalf("Hex(3) gave %q and %q", a, b)
	}
}

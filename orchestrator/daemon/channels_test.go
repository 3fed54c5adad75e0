package daemon

import (
	"strings"
	"testing"
)

// TestCheckChannels checks that a site whose [notify] urls name a service
// nothing can send to does not start, and that the error names the key
// and the entry without quoting secrets.
func TestCheckChannels(t *testing.T) {
	tests := []struct {
		urls []string
		want []string // substrings of the error; nil accepts
	}{
		{nil, nil},
		{[]string{"generic+http://127.0.0.1:9/hook", "smtp://u:pw@127.0.0.1:25/?from=a@b.c&to=d@e.f"}, nil},
		{[]string{"generic://127.0.0.1:9/", "ftp://u:s3cret@127.0.0.1/", "gopher://s3cret@127.0.0.1/"},
			[]string{"notify.urls: entry 2 names no service", "notify.urls: entry 3 names no service"}},
	}
	for _, tc := range tests {
		err := checkChannels(tc.urls)
		if (err != nil) != (tc.want != nil) {
			t.Fatalf("%v: %v", tc.urls, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: %v; want it to say %q", tc.urls, err, w)
			}
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("the error quotes a secret: %v", err)
		}
	}
}

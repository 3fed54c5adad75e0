package httpapi

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"testing"
)

// TestNamePage pages through a list by name with every page size and
// checks that the pages, joined, are the whole list in order; tokens and
// limits that no list gave are refused.
func TestNamePage(t *testing.T) {
	var names []string
	for i := range 23 {
		names = append(names, fmt.Sprintf("t%02d", (i*7)%23)) // out of order
	}
	want := slices.Sorted(slices.Values(names))
	for _, limit := range []int{1, 2, 5, 22, 23, 100} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			q := url.Values{"limit": {fmt.Sprint(limit)}}
			var got []string
			for range 30 {
				page, next, err := namePage(q, slices.Clone(names), func(s string) string { return s })
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, page...)
				if next == "" {
					break
				}
				q.Set("continue", next)
			}
			if !slices.Equal(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
	for _, q := range []url.Values{
		{"limit": {"0"}}, {"limit": {"x"}}, {"limit": {"5001"}},
		{"continue": {"!!"}}, {"continue": {base64.RawURLEncoding.EncodeToString(make([]byte, 64<<10+1))}},
	} {
		var bad *badRequest
		if _, _, err := namePage(q, names, func(s string) string { return s }); !errors.As(err, &bad) {
			t.Errorf("%v: %v; want refused", q, err)
		}
	}
}

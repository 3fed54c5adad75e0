package main

import (
	"strings"
	"testing"
)

func TestReport(t *testing.T) {
	in := strings.Join([]string{
		`{"Action":"run","Package":"p","Test":"TestA"}`,
		`{"Action":"output","Package":"p","Test":"TestA","Output":"    x.go:1: mao-integration: docker\n"}`,
		`{"Action":"output","Package":"p","Test":"TestA/sub","Output":"    x.go:1: mao-integration: etcd\n"}`,
		`{"Action":"pass","Package":"p","Test":"TestA/sub"}`,
		`{"Action":"pass","Package":"p","Test":"TestA"}`,
		`{"Action":"output","Package":"p","Test":"TestB","Output":"boom\n"}`,
		`{"Action":"fail","Package":"p","Test":"TestB"}`,
		`{"Action":"output","Package":"p","Test":"TestC","Output":"    no Docker engine\n"}`,
		`{"Action":"skip","Package":"p","Test":"TestC"}`,
		`{"Action":"fail","Package":"p"}`,
		`# build error line`,
	}, "\n")
	tests := []struct {
		strict bool
		ok     bool
		has    []string
	}{
		{false, false, []string{"--- FAIL p TestB\nboom", "tests: 2 passed, 1 failed, 1 skipped\n", "1 with docker, 1 with etcd", "# build error line", "--- SKIP p TestC: no Docker engine"}},
		{true, false, []string{"1 tests skipped"}},
	}
	for _, tc := range tests {
		var out strings.Builder
		ok, err := report(strings.NewReader(in), &out, tc.strict)
		if err != nil || ok != tc.ok {
			t.Fatalf("ok=%v err=%v", ok, err)
		}
		for _, h := range tc.has {
			if !strings.Contains(out.String(), h) {
				t.Errorf("report lacks %q:\n%s", h, out.String())
			}
		}
	}
	var out strings.Builder
	ok, _ := report(strings.NewReader(`{"Action":"pass","Package":"p","Test":"T"}`), &out, true)
	if !ok || !strings.Contains(out.String(), "PASS") {
		t.Fatalf("all passed: %v\n%s", ok, out.String())
	}
}

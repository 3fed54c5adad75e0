package main

import (
	"testing"

	"github.com/mao-research/mao/toolspec"
)

// The example specs must stay valid as the spec grows.
func TestSpecsAreValid(t *testing.T) {
	tool, err := toolspec.LoadTool("tool.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := tool.Validate(); err != nil {
		t.Fatal(err)
	}
	ds, err := toolspec.LoadDataset("dataset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := ds.Validate(); err != nil {
		t.Fatal(err)
	}
	if tool.InputDataset != ds.Name {
		t.Fatalf("tool reads %q, dataset is %q", tool.InputDataset, ds.Name)
	}
}

package api

import "github.com/mao-research/mao/toolspec"

// LoadTool reads a tool spec from a .json, .yaml or .yml file; unknown fields
// are errors and the result is not validated (see toolspec.LoadTool).
func LoadTool(path string) (Tool, error) { return toolspec.LoadTool(path) }

// LoadDataset reads a dataset spec from a .json, .yaml or .yml file (see
// toolspec.LoadDataset).
func LoadDataset(path string) (Dataset, error) { return toolspec.LoadDataset(path) }

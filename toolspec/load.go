package toolspec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// LoadTool reads a tool spec from a .json, .yaml or .yml file. Unknown fields
// are errors. The result is not validated.
func LoadTool(path string) (Tool, error) {
	var t Tool
	return t, loadFile(path, &t)
}

// LoadDataset reads a dataset spec from a .json, .yaml or .yml file.
func LoadDataset(path string) (Dataset, error) {
	var d Dataset
	return d, loadFile(path, &d)
}

func loadFile(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	isJSON := strings.EqualFold(filepath.Ext(path), ".json")
	if err := Decode(data, isJSON, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Decode strictly decodes one JSON (isJSON) or YAML document into v.
func Decode(data []byte, isJSON bool, v any) error {
	if isJSON {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			return err
		}
		if dec.More() {
			return errors.New("more than one JSON value")
		}
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("empty document")
		}
		return err
	}
	return nil
}

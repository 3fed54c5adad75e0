package detector

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// ReadColumn reads one column of a CSV file as numbers, top to bottom.
// column is a header name, a 1-based index, or "" for the first column.
// With a header name the first row is the header; otherwise the first row
// is skipped as a header when its cell is not a number. Blank lines are
// skipped; an empty or non-numeric cell, a row without the column and a
// file without values are errors that give the line number.
func ReadColumn(r io.Reader, column string) ([]float64, error) {
	cr := newCSVReader(r)
	cr.ReuseRecord = true

	column = strings.TrimSpace(column)
	index, byName := 0, false
	if column != "" {
		if n, err := strconv.Atoi(column); err == nil && n < 1 {
			return nil, fmt.Errorf("column %d: column indexes start at 1", n)
		}
		index, byName = columnIndex(column)
		byName = !byName
	}
	what := fmt.Sprintf("column %d", index+1)
	if byName {
		what = fmt.Sprintf("column %q", column)
	}

	var values []float64
	for row := 0; ; row++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err // a *csv.ParseError gives its line
		}
		line, _ := cr.FieldPos(0)
		if row == 0 && byName {
			index = -1
			for i, h := range rec {
				if strings.TrimSpace(h) == column {
					index = i
					break
				}
			}
			if index < 0 {
				return nil, fmt.Errorf("line %d: no column %q in the header", line, column)
			}
			continue
		}
		if index >= len(rec) {
			cells := "cells"
			if len(rec) == 1 {
				cells = "cell"
			}
			return nil, fmt.Errorf("line %d: no %s: the row has %d %s", line, what, len(rec), cells)
		}
		cell := strings.TrimSpace(rec[index])
		v, err := strconv.ParseFloat(cell, 64)
		switch {
		case err != nil && row == 0 && cell != "":
			continue // a header
		case cell == "":
			return nil, fmt.Errorf("line %d: %s is an empty cell", line, what)
		case err != nil || math.IsNaN(v) || math.IsInf(v, 0):
			return nil, fmt.Errorf("line %d: %s: %q is not a finite number", line, what, cell)
		}
		values = append(values, v)
	}
	if len(values) == 0 {
		return nil, fmt.Errorf("no values in %s", what)
	}
	return values, nil
}

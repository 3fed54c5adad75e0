package maoctl

import (
	"bytes"
	"encoding/xml"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/detector"
)

// svgShape is what a test reads of a plot: its elements by class, and the
// sites and metrics it names.
type svgShape struct {
	classes map[string]int
	sites   []string
	metrics []string
	titles  []string
	dots    []struct{ x, y float64 }
}

func parseSVG(t *testing.T, b []byte) svgShape {
	t.Helper()
	shape := svgShape{classes: map[string]int{}}
	d := xml.NewDecoder(bytes.NewReader(b))
	inTitle := false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return shape
		}
		if err != nil {
			t.Fatalf("the plot is not well-formed XML: %v", err)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			inTitle = e.Name.Local == "title"
			if e.Name.Local == "circle" {
				var d struct{ x, y float64 }
				for _, a := range e.Attr {
					switch a.Name.Local {
					case "cx":
						d.x, _ = strconv.ParseFloat(a.Value, 64)
					case "cy":
						d.y, _ = strconv.ParseFloat(a.Value, 64)
					}
				}
				shape.dots = append(shape.dots, d)
			}
			for _, a := range e.Attr {
				switch a.Name.Local {
				case "class":
					shape.classes[a.Value]++
				case "data-site":
					shape.sites = append(shape.sites, a.Value)
				case "data-metric":
					shape.metrics = append(shape.metrics, a.Value)
				}
			}
		case xml.CharData:
			if inTitle {
				shape.titles = append(shape.titles, string(e))
			}
		case xml.EndElement:
			inTitle = false
		}
	}
}

func TestWriteSVG(t *testing.T) {
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	series := func(site, metric string, values ...float64) api.Series {
		s := api.Series{Tool: "crawl", Site: site, Metric: metric}
		verdicts := detector.Scan(values, detector.Config{})
		for i, v := range values {
			s.Points = append(s.Points, api.SeriesPoint{Run: site + "-" + string(rune('a'+i)), Time: at.Add(time.Duration(i) * time.Hour),
				Value: v, Spike: verdicts[i].Spike})
		}
		return s
	}
	steady := []float64{10, 11, 10, 12, 11, 10, 11, 12, 10, 11, 90, 11, 10}
	tests := []struct {
		name    string
		list    []api.Series
		spikes  int
		bands   bool
		sites   []string
		metrics []string
	}{
		{"a spike over its band", []api.Series{series("lab-a", "rows", steady...)}, 1, true, []string{"lab-a"}, []string{"rows"}},
		{"three sites overlaid", []api.Series{series("lab-a", "rows", steady...), series("lab-b", "rows", steady[:6]...),
			series("lab-c", "rows", 5, 5, 5)}, 1, true, []string{"lab-a", "lab-b", "lab-c"}, []string{"rows"}},
		{"a panel per metric", []api.Series{series("lab-a", "rows", 1, 2), series("lab-a", "bytes", 7)}, 0, false,
			[]string{"lab-a", "lab-a"}, []string{"rows", "bytes"}},
		{"one point", []api.Series{series("lab-a", "rows", 3)}, 0, false, []string{"lab-a"}, []string{"rows"}},
		{"huge values", []api.Series{series("lab-a", "ns", 1e17, 1.7e18, 1.7e18), series("lab-b", "ns", 1e308, -1e308)}, 0, false,
			[]string{"lab-a", "lab-b"}, []string{"ns"}},
		{"names that are markup", []api.Series{series(`<script>`, `a&b"`, 1, 2, 3)}, 0, false, []string{`<script>`}, []string{`a&b"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := writeSVG(&b, "crawl", tc.list, &detector.Config{}); err != nil {
				t.Fatal(err)
			}
			shape := parseSVG(t, b.Bytes())
			points := 0
			for _, s := range tc.list {
				points += len(s.Points)
			}
			if shape.classes["spike"] != tc.spikes || shape.classes["spike"]+shape.classes["point"] != points {
				t.Errorf("%d spike and %d other dots; want %d spikes of %d points", shape.classes["spike"], shape.classes["point"], tc.spikes, points)
			}
			if (shape.classes["band"] > 0) != tc.bands || shape.classes["series"] != len(tc.list) {
				t.Errorf("%d bands, %d lines; want bands %v, %d lines", shape.classes["band"], shape.classes["series"], tc.bands, len(tc.list))
			}
			if strings.Join(shape.sites, ",") != strings.Join(tc.sites, ",") || strings.Join(shape.metrics, ",") != strings.Join(tc.metrics, ",") {
				t.Errorf("sites %q, metrics %q; want %q, %q", shape.sites, shape.metrics, tc.sites, tc.metrics)
			}
			// Every dot lies within its panel.
			for _, c := range shape.dots {
				if c.y < svgTop || c.y > float64(svgTop+len(tc.metrics)*(svgPanelHeight+svgBottom)) || c.x < svgLeft || c.x > svgWidth-svgRight {
					t.Errorf("a dot at %v,%v lies outside the plot", c.x, c.y)
				}
			}
			for _, title := range shape.titles {
				if !strings.Contains(title, "(run ") {
					t.Errorf("a tooltip that names no run: %q", title)
				}
			}
		})
	}
}

package maoctl

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/detector"
)

// The SVG plot's layout, in pixels.
const (
	svgWidth       = 960
	svgPanelHeight = 320
	svgLeft        = 80
	svgRight       = 24
	svgTop         = 40
	svgBottom      = 48
)

// svgColours tell the sites apart, in order; spikes are red.
var svgColours = []string{"#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f", "#bcbd22"}

const svgSpike = "#d62728"

// writeSVG plots a tool's series as one SVG image: a panel per metric, in
// which each site's values are a line of its colour over the band the
// spike detector (cfg, the tool's settings; nil: no band) judges each
// value against, shaded, and each point recorded as a spike is a red dot.
// Every point's tooltip names its run, time and value.
func writeSVG(w io.Writer, tool string, list []api.Series, cfg *detector.Config) error {
	var metrics []string
	sites := map[string]int{}
	for _, s := range list {
		if !slices.Contains(metrics, s.Metric) {
			metrics = append(metrics, s.Metric)
		}
		if _, ok := sites[s.Site]; !ok {
			sites[s.Site] = len(sites)
		}
	}
	height := svgTop + max(len(metrics), 1)*(svgPanelHeight+svgBottom)
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		svgWidth, height, svgWidth, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="16" font-weight="bold">%s</text>`+"\n", svgLeft, esc("series of tool "+tool))
	for i, metric := range metrics {
		var panel []api.Series
		for _, s := range list {
			if s.Metric == metric {
				panel = append(panel, s)
			}
		}
		svgPanel(&b, svgTop+i*(svgPanelHeight+svgBottom), metric, panel, sites, cfg)
	}
	b.WriteString("</svg>\n")
	_, err := w.Write(b.Bytes())
	return err
}

// svgPanel draws one metric's series at y0.
func svgPanel(b *bytes.Buffer, y0 int, metric string, panel []api.Series, sites map[string]int, cfg *detector.Config) {
	bands := make([][]detector.Verdict, len(panel))
	var t0, t1 time.Time
	lo, hi := math.Inf(1), math.Inf(-1)
	for i, s := range panel {
		values := make([]float64, len(s.Points))
		for j, p := range s.Points {
			values[j] = p.Value
			if t0.IsZero() || p.Time.Before(t0) {
				t0 = p.Time
			}
			if p.Time.After(t1) {
				t1 = p.Time
			}
		}
		if cfg != nil {
			bands[i] = detector.Scan(values, *cfg)
		} else {
			bands[i] = make([]detector.Verdict, len(values))
		}
		for j, v := range values {
			lo, hi = finiteMin(lo, v), finiteMax(hi, v)
			if vd := bands[i][j]; vd.Low != nil && vd.High != nil {
				lo, hi = finiteMin(lo, *vd.Low), finiteMax(hi, *vd.High)
			}
		}
	}
	if math.IsInf(lo, 0) {
		lo, hi = 0, 1
	}
	// Halves, so that a range of ±1e308 does not overflow; a flat series
	// gets a margin of its own size (1 near 0).
	half := hi/2 - lo/2
	if half == 0 {
		half = max(math.Abs(lo)/2, 1) / 10
	}
	mid := lo/2 + hi/2
	half *= 1.05
	lo, hi = mid-half, mid+half
	left, right, top, bottom := float64(svgLeft), float64(svgWidth-svgRight), float64(y0+20), float64(y0+20+svgPanelHeight-20)
	x := func(t time.Time) float64 {
		if !t1.After(t0) {
			return (left + right) / 2
		}
		return left + (right-left)*float64(t.Sub(t0))/float64(t1.Sub(t0))
	}
	y := func(v float64) float64 { return bottom - (bottom-top)*((v/2-lo/2)/half) }

	fmt.Fprintf(b, `<g class="panel" data-metric="%s">`+"\n", esc(metric))
	fmt.Fprintf(b, `<text x="%d" y="%d" font-weight="bold">%s</text>`+"\n", svgLeft, y0+12, esc("metric "+metric))
	fmt.Fprintf(b, `<rect x="%s" y="%s" width="%s" height="%s" fill="none" stroke="#ccc"/>`+"\n", num(left), num(top), num(right-left), num(bottom-top))
	for k := 0; k <= 4; k++ { // the value axis
		v := lo + half/2*float64(k)
		fmt.Fprintf(b, `<line x1="%s" x2="%s" y1="%s" y2="%s" stroke="#eee"/><text x="%s" y="%s" text-anchor="end">%s</text>`+"\n",
			num(left), num(right), num(y(v)), num(y(v)), num(left-6), num(y(v)+4), esc(strconv.FormatFloat(v, 'g', 4, 64)))
	}
	for k, t := range []time.Time{t0, t0.Add(t1.Sub(t0) / 2), t1} { // the time axis
		anchor := []string{"start", "middle", "end"}[k]
		fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="%s">%s</text>`+"\n", num(x(t)), num(bottom+16), anchor, esc(t.UTC().Format("2006-01-02 15:04")))
	}
	for i, s := range panel {
		colour := svgColours[sites[s.Site]%len(svgColours)]
		// The band, in stretches of points that have one.
		var upper, lower []string
		flush := func() {
			if len(upper) > 1 {
				slices.Reverse(lower)
				fmt.Fprintf(b, `<polygon class="band" fill="%s" fill-opacity="0.12" stroke="none" points="%s"/>`+"\n", colour, strings.Join(append(upper, lower...), " "))
			}
			upper, lower = upper[:0], lower[:0]
		}
		var line []string
		for j, p := range s.Points {
			line = append(line, num(x(p.Time))+","+num(y(p.Value)))
			if vd := bands[i][j]; vd.Low != nil && vd.High != nil {
				upper = append(upper, num(x(p.Time))+","+num(y(*vd.High)))
				lower = append(lower, num(x(p.Time))+","+num(y(*vd.Low)))
			} else {
				flush()
			}
		}
		flush()
		fmt.Fprintf(b, `<polyline class="series" data-site="%s" fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", esc(s.Site), colour, strings.Join(line, " "))
		for _, p := range s.Points {
			class, fill, r := "point", colour, "2.5"
			if p.Spike {
				class, fill, r = "spike", svgSpike, "5"
			}
			fmt.Fprintf(b, `<circle class="%s" cx="%s" cy="%s" r="%s" fill="%s"><title>%s</title></circle>`+"\n", class,
				num(x(p.Time)), num(y(p.Value)), r, fill,
				esc(fmt.Sprintf("%s at %s: %s (run %s, %s)", metric, s.Site, number(p.Value), p.Run, p.Time.UTC().Format(time.RFC3339))))
		}
		// The legend.
		lx := right - 160
		ly := top + 16 + float64(sites[s.Site])*16
		fmt.Fprintf(b, `<rect x="%s" y="%s" width="12" height="3" fill="%s"/><text x="%s" y="%s">%s</text>`+"\n",
			num(lx), num(ly-4), colour, num(lx+18), num(ly), esc("site "+s.Site))
	}
	b.WriteString("</g>\n")
}

func finiteMin(a, v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return a
	}
	return min(a, v)
}

func finiteMax(a, v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return a
	}
	return max(a, v)
}

// num writes a coordinate with one decimal.
func num(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		v = 0
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

// esc escapes text for SVG: names and metrics come from etcd.
func esc(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

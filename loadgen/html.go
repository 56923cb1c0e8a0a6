package loadgen

import (
	"fmt"
	"html"
	"html/template"
	"io"
	"math"
	"sort"
	"strings"
)

// series is one line of a chart.
type series struct {
	name string
	x, y []float64
}

// tick is an axis label at a data value.
type tick struct {
	at    float64
	label string
}

// chart is a line chart rendered as inline SVG: no scripts, no external
// resources, so the report works offline and in any browser.
// band is a stretch of the x axis drawn behind a chart's series: a stage,
// labelled at the top, shaded when it is excluded from the results.
type band struct {
	from, to float64
	label    string
	shade    bool
}

// stageBands returns a band per profile stage of r, the warm-up shaded.
func stageBands(r *Result) []band {
	var out []band
	for _, st := range r.Stages {
		if st.Kind != "profile" || st.DurationSeconds <= 0 {
			continue
		}
		label := st.Name
		if st.Warmup {
			label += " (warm-up, excluded)"
		}
		out = append(out, band{from: st.StartSeconds, to: st.StartSeconds + st.DurationSeconds, label: label, shade: st.Warmup})
	}
	return out
}

type chart struct {
	title, xLabel, yLabel string
	logY                  bool
	series                []series
	xTicks                []tick // nil: computed
	bands                 []band // stages shown behind the series
	yFormat               func(float64) string
}

// color returns the i-th series colour.
func color(i int) string {
	const palette = "#1f77b4#d62728#2ca02c#ff7f0e#9467bd#8c564b#e377c2#17becf"
	i %= len(palette) / 7
	return palette[i*7 : i*7+7]
}

const (
	chartW, chartH                     = 960, 300
	marginL, marginR, marginT, marginB = 70, 170, 30, 40
)

// niceStep returns a 1/2/5×10^k step giving about n ticks over span.
func niceStep(span float64, n int) float64 {
	if span <= 0 {
		return 1
	}
	raw := span / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			return m * mag
		}
	}
	return 10 * mag
}

// svg renders the chart.
func (c chart) svg() template.HTML {
	yf := c.yFormat
	if yf == nil {
		yf = func(v float64) string { return fmt.Sprintf("%g", round(v, 3)) }
	}
	xmin, xmax := math.Inf(1), math.Inf(-1)
	ymin, ymax := math.Inf(1), math.Inf(-1)
	for _, s := range c.series {
		for i := range s.x {
			y := s.y[i]
			if c.logY && y <= 0 {
				continue
			}
			xmin, xmax = math.Min(xmin, s.x[i]), math.Max(xmax, s.x[i])
			ymin, ymax = math.Min(ymin, y), math.Max(ymax, y)
		}
	}
	if !math.IsInf(xmin, 1) {
		for _, bd := range c.bands {
			xmin, xmax = math.Min(xmin, bd.from), math.Max(xmax, bd.to)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s">`,
		chartW, chartH, chartW, chartH, html.EscapeString(c.title))
	fmt.Fprintf(&b, `<text x="%d" y="18" font-size="14" font-weight="bold">%s</text>`, marginL, html.EscapeString(c.title))
	if math.IsInf(xmin, 1) {
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#888">no data</text></svg>`, marginL, chartH/2)
		return template.HTML(b.String())
	}
	if xmax == xmin {
		xmax = xmin + 1
	}
	tf := func(v float64) float64 { return v }
	if c.logY {
		tf = math.Log10
		ymin = math.Pow(10, math.Floor(math.Log10(ymin)))
		ymax = math.Pow(10, math.Ceil(math.Log10(ymax)))
		if ymax == ymin {
			ymax = ymin * 10
		}
	} else {
		ymin = 0
		if ymax <= 0 {
			ymax = 1
		}
		ymax *= 1.05
	}
	pw, ph := float64(chartW-marginL-marginR), float64(chartH-marginT-marginB)
	px := func(x float64) float64 { return float64(marginL) + (x-xmin)/(xmax-xmin)*pw }
	py := func(y float64) float64 {
		return float64(marginT) + ph - (tf(y)-tf(ymin))/(tf(ymax)-tf(ymin))*ph
	}
	// Axes and grid.
	for i, bd := range c.bands {
		x0, x1 := px(bd.from), px(bd.to)
		if bd.shade {
			fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%.0f" fill="#e8e8e8"/>`, x0, marginT, x1-x0, ph)
		}
		if i > 0 {
			fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%.1f" stroke="#bbb" stroke-dasharray="4 3"/>`, x0, x0, marginT, float64(marginT)+ph)
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="10" fill="#555"><title>%s</title>%s</text>`, x0+3, marginT+11, html.EscapeString(bd.label), html.EscapeString(clip(bd.label, int((x1-x0)/6))))
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.0f" height="%.0f" fill="none" stroke="#999"/>`, marginL, marginT, pw, ph)
	var yt []float64
	if c.logY {
		for d := ymin; d <= ymax*1.0001; d *= 10 {
			yt = append(yt, d)
		}
	} else {
		step := niceStep(ymax, 5)
		for v := 0.0; v <= ymax; v += step {
			yt = append(yt, v)
		}
	}
	for _, v := range yt {
		y := py(v)
		fmt.Fprintf(&b, `<line x1="%d" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#eee"/>`, marginL, float64(marginL)+pw, y, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" font-size="11" text-anchor="end">%s</text>`, marginL-4, y+4, html.EscapeString(yf(v)))
	}
	xt := c.xTicks
	if xt == nil {
		step := niceStep(xmax-xmin, 8)
		for v := math.Ceil(xmin/step) * step; v <= xmax; v += step {
			xt = append(xt, tick{v, fmt.Sprintf("%g", round(v, 3))})
		}
	}
	for _, t := range xt {
		if t.at < xmin-1e-6 || t.at > xmax+1e-6 {
			continue
		}
		x := px(t.at)
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%.1f" stroke="#eee"/>`, x, x, marginT, float64(marginT)+ph)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="11" text-anchor="middle">%s</text>`, x, float64(marginT)+ph+14, html.EscapeString(t.label))
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="11" text-anchor="middle">%s</text>`, float64(marginL)+pw/2, chartH-6, html.EscapeString(c.xLabel))
	fmt.Fprintf(&b, `<text x="14" y="%.1f" font-size="11" text-anchor="middle" transform="rotate(-90 14 %.1f)">%s</text>`, float64(marginT)+ph/2, float64(marginT)+ph/2, html.EscapeString(c.yLabel))
	// Lines and legend.
	for i, s := range c.series {
		color := color(i)
		var pts []string
		for j := range s.x {
			if c.logY && s.y[j] <= 0 {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(s.x[j]), py(s.y[j])))
		}
		if len(pts) > 0 {
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`, color, strings.Join(pts, " "))
		}
		ly := marginT + 14*i + 8
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="%s" stroke-width="3"/>`, float64(marginL)+pw+10, float64(marginL)+pw+28, ly, ly, color)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="11">%s</text>`, float64(marginL)+pw+32, ly+4, html.EscapeString(s.name))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// mainOps returns the operations to chart: the transaction first, then the
// busiest, at most n.
// clip shortens s to at most n characters, marking a cut with "…".
func clip(s string, n int) string {
	r := []rune(s)
	switch {
	case len(r) <= n:
		return s
	case n <= 1:
		return ""
	}
	return string(r[:n-1]) + "…"
}

func mainOps(r *Result, n int) []string {
	ops := append([]OpResult(nil), r.Ops...)
	sort.SliceStable(ops, func(i, j int) bool {
		if (ops[i].Name == OpTxn) != (ops[j].Name == OpTxn) {
			return ops[i].Name == OpTxn
		}
		return ops[i].Count > ops[j].Count
	})
	var out []string
	for _, o := range ops {
		if len(out) == n {
			break
		}
		out = append(out, o.Name)
	}
	return out
}

// fullIntervals drops intervals shorter than half the longest (the final
// partial one), whose rates would be noise.
func fullIntervals(in []IntervalResult) []IntervalResult {
	var longest float64
	for _, iv := range in {
		longest = math.Max(longest, iv.EndSeconds-iv.StartSeconds)
	}
	var out []IntervalResult
	for _, iv := range in {
		if w := iv.EndSeconds - iv.StartSeconds; w > 0 && w >= longest/2 {
			out = append(out, iv)
		}
	}
	return out
}

// charts builds the report's charts.
func charts(r *Result) []template.HTML {
	var out []template.HTML
	// Throughput: target vs issued vs completed.
	bands := stageBands(r)
	th := chart{title: "Throughput", xLabel: "seconds from profile start", yLabel: "per second", bands: bands}
	tgt, iss := series{name: "target"}, series{name: "issued"}
	ops := mainOps(r, 4)
	done := make([]series, len(ops))
	errs := series{name: "errors (all ops)"}
	for i, op := range ops {
		done[i].name = op + " done"
	}
	ivs := fullIntervals(r.Intervals)
	for _, iv := range ivs {
		w := iv.EndSeconds - iv.StartSeconds
		x := iv.EndSeconds
		tgt.x, tgt.y = append(tgt.x, x), append(tgt.y, iv.TargetRate)
		iss.x, iss.y = append(iss.x, x), append(iss.y, float64(iv.Issued)/w)
		var e int64
		for i, op := range ops {
			done[i].x, done[i].y = append(done[i].x, x), append(done[i].y, float64(iv.Ops[op].Count)/w)
		}
		for _, o := range iv.Ops {
			e += o.Errors
		}
		errs.x, errs.y = append(errs.x, x), append(errs.y, float64(e)/w)
	}
	th.series = append([]series{tgt, iss}, done...)
	th.series = append(th.series, errs)
	out = append(out, th.svg())

	// Latency over time, one chart per main operation.
	for _, op := range ops {
		c := chart{title: "Latency over time: " + op + " (from intended send time)", xLabel: "seconds from profile start", yLabel: "latency", logY: true, yFormat: fmtMs, bands: bands}
		p50, p99, mx := series{name: "p50"}, series{name: "p99"}, series{name: "max"}
		for _, iv := range ivs {
			o, ok := iv.Ops[op]
			if !ok || o.Count == 0 {
				continue
			}
			x := iv.EndSeconds
			p50.x, p50.y = append(p50.x, x), append(p50.y, o.P50)
			p99.x, p99.y = append(p99.x, x), append(p99.y, o.P99)
			mx.x, mx.y = append(mx.x, x), append(mx.y, o.Max)
		}
		c.series = []series{p50, p99, mx}
		out = append(out, c.svg())
	}

	// Percentile spectrum: x is the number of nines.
	sp := chart{title: "Latency percentile spectrum (warm-up excluded)", xLabel: "percentile", yLabel: "latency", logY: true, yFormat: fmtMs}
	for _, op := range mainOps(r, 8) {
		o := r.Op(op)
		s := series{name: op}
		for _, pt := range o.Spectrum {
			p := math.Min(pt.Percentile, 99.9999)
			s.x = append(s.x, -math.Log10(1-p/100))
			s.y = append(s.y, pt.Ms)
		}
		sp.series = append(sp.series, s)
	}
	for i, l := range []string{"0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "max"} {
		sp.xTicks = append(sp.xTicks, tick{float64(i), l})
	}
	sp.xTicks[len(sp.xTicks)-1].at = 6
	out = append(out, sp.svg())
	return out
}

const htmlPage = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>posfleet loadgen — {{.Result.Profile}}</title>
<style>
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#222;max-width:1200px}
pre{background:#f6f6f6;padding:12px;overflow-x:auto;font-size:12px}
.bad{color:#b00;font-weight:bold}.good{color:#070;font-weight:bold}
figure{margin:16px 0}
</style></head><body>
<h1>posfleet loadgen: {{.Result.Profile}}</h1>
<p>posfleet {{.Result.Environment.Version}}{{with .Result.Environment.Commit}} (commit {{.}}{{if $.Result.Environment.Modified}}, modified{{end}}){{end}},
{{.Result.Environment.GoVersion}}, on {{.Result.Environment.Host}} with {{.Result.Environment.CPUs}} CPUs.</p>
<p>Started {{.Result.StartTime.Format "2006-01-02 15:04:05 MST"}}; {{.Result.Arrivals}} arrivals;
target {{printf "%.1f" .Result.TargetRate}}/s, achieved {{printf "%.1f" .Result.AchievedRate}}/s
over {{printf "%.1f" .Result.MeasuredSeconds}}s.
{{if .Result.Generator.Behind}}<span class="bad">The generator fell behind: see warnings.</span>{{end}}
{{range .Result.SLOs}}{{if .Pass}}<span class="good">PASS</span>{{else}}<span class="bad">FAIL</span>{{end}} <code>{{.Expr}}</code> {{end}}</p>
<p>Latency is measured from each call's intended send time, so time spent queued behind a slow
terminal or a late generator counts (no coordinated omission). Service time is from the actual
send; send-lag is the difference. Shaded stretches are the warm-up, left out of the results;
dashed lines divide the profile's stages.</p>
{{range .Charts}}<figure>{{.}}</figure>
{{end}}
<h2>Summary</h2>
<pre>{{.Table}}</pre>
</body></html>
`

// WriteHTML writes a self-contained HTML report with charts of throughput,
// latency over time and the percentile spectrum, and the summary table.
func WriteHTML(w io.Writer, r *Result) error {
	var t strings.Builder
	if err := WriteTable(&t, r); err != nil {
		return err
	}
	tmpl, err := template.New("report").Parse(htmlPage)
	if err != nil {
		return err
	}
	return tmpl.Execute(w, struct {
		Result *Result
		Charts []template.HTML
		Table  string
	}{r, charts(r), t.String()})
}

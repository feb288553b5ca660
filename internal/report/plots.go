package report

import (
	"bytes"
	"cmp"
	"fmt"
	"image/color"
	"maps"
	"math"
	"slices"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/soakd/soakd/internal/report/history"
)

// Figure is one plot of the HTML report, as inline SVG; Err says why a
// plot could not be drawn (the page still renders).
type Figure struct {
	Title string
	SVG   []byte
	Err   string
}

// timeAxis picks the plots' time unit from the run's length.
type timeAxis struct {
	unit  time.Duration
	label string
}

func axisFor(run Seconds) timeAxis {
	if run.Duration() > 3*time.Hour {
		return timeAxis{time.Hour, "soak time (hours)"}
	}
	return timeAxis{time.Minute, "soak time (minutes)"}
}

func (a timeAxis) x(d time.Duration) float64 { return float64(d) / float64(a.unit) }

var (
	faultShade  = color.NRGBA{R: 230, G: 120, B: 60, A: 56}
	faultLabel  = color.RGBA{R: 150, G: 70, B: 20, A: 255}
	alertColor  = color.RGBA{R: 200, G: 0, B: 0, A: 255}
	canaryColor = color.RGBA{R: 120, G: 60, B: 180, A: 255}
	palette     = []color.Color{color.RGBA{R: 31, G: 119, B: 180, A: 255}, color.RGBA{R: 44, G: 160, B: 44, A: 255},
		color.RGBA{R: 214, G: 39, B: 40, A: 255}, color.RGBA{R: 148, G: 103, B: 189, A: 255}, color.RGBA{R: 140, G: 86, B: 75, A: 255}}
)

// overlay shades fault windows and marks alerts on a plot, as Jepsen's
// plots shade nemesis periods: what the system did next to what was done
// to it.
type overlay struct {
	axis   timeAxis
	faults []Fault
	alerts []Alert
	end    Seconds // where a fault never reverted is drawn to
	// signal, when set, marks only that leak signal's alerts.
	signal string
}

// labelRows is how many rows fault labels are staggered over, so faults
// that start together stay readable.
const labelRows = 3

func (o overlay) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	label := p.X.Tick.Label
	label.Font.Size = vg.Points(7)
	label.XAlign, label.YAlign = draw.XLeft, draw.YTop
	for i, f := range o.faults {
		from, to := f.Start.Duration(), (f.Start + f.Duration).Duration()
		if f.Duration == 0 {
			to = o.end.Duration()
		}
		x0 := max(o.axis.x(from), p.X.Min)
		x1 := min(o.axis.x(to), p.X.Max)
		if x1 <= x0 {
			continue
		}
		pts := []vg.Point{{X: trX(x0), Y: c.Min.Y}, {X: trX(x1), Y: c.Min.Y}, {X: trX(x1), Y: c.Max.Y}, {X: trX(x0), Y: c.Max.Y}}
		c.FillPolygon(faultShade, c.ClipPolygonXY(pts))
		label.Color = faultLabel
		row := vg.Length(i%labelRows) * label.Height(f.Kind)
		c.FillText(label, vg.Point{X: trX(x0) + 1, Y: c.Max.Y - 1 - row}, f.Kind)
	}
	for _, a := range o.alerts {
		if o.signal != "" && (a.Signal != o.signal || a.Node != "") {
			continue
		}
		x := o.axis.x(a.Fired.Duration())
		if x < p.X.Min || x > p.X.Max {
			continue
		}
		clr := alertColor
		text := "alert " + a.Signal
		if a.Canary != "" {
			clr, text = canaryColor, "canary alert "+a.Signal
		}
		c.StrokeLine2(draw.LineStyle{Color: clr, Width: vg.Points(1), Dashes: []vg.Length{vg.Points(3), vg.Points(2)}},
			trX(x), c.Min.Y, trX(x), c.Max.Y)
		label.Color = clr
		label.YAlign = draw.YBottom
		c.FillText(label, vg.Point{X: trX(x) + 2, Y: c.Min.Y + 2}, text)
		label.YAlign = draw.YTop
	}
}

// newPlot is a plot with the report's look.
func newPlot(title, ylabel string, a timeAxis) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = a.label
	p.Y.Label.Text = ylabel
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.TextStyle.Font.Size = vg.Points(8)
	p.Title.TextStyle.Font.Size = vg.Points(11)
	p.Add(plotter.NewGrid())
	return p
}

// svgOf renders p as SVG without the XML prelude, for inline use.
func svgOf(p *plot.Plot) ([]byte, error) {
	c := vgsvg.New(7*vg.Inch, 3*vg.Inch)
	p.Draw(draw.New(c))
	var b bytes.Buffer
	if _, err := c.WriteTo(&b); err != nil {
		return nil, err
	}
	out := b.Bytes()
	if i := bytes.Index(out, []byte("<svg")); i > 0 {
		out = out[i:]
	}
	return out, nil
}

func addLine(p *plot.Plot, name string, xys plotter.XYs, clr color.Color, dashed bool) error {
	if len(xys) == 0 {
		return nil
	}
	l, err := plotter.NewLine(xys)
	if err != nil {
		return err
	}
	l.Color, l.Width = clr, vg.Points(1.2)
	if dashed {
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	}
	p.Add(l)
	p.Legend.Add(name, l)
	return nil
}

// finite drops the points a step without samples left as NaN.
func finite(xys plotter.XYs) plotter.XYs {
	out := xys[:0]
	for _, xy := range xys {
		if !math.IsNaN(xy.Y) && !math.IsInf(xy.Y, 0) {
			out = append(out, xy)
		}
	}
	return out
}

// leakFigure plots one leak signal: the range and mean of each step, and
// at the end of the run the main window's fitted slope beside the slope
// the threshold allows, from the same point.
func leakFigure(l Leak, s history.Series, window time.Duration, a timeAxis, o overlay) (Figure, error) {
	scale, unit := 1.0, l.Unit
	if l.Unit == "bytes" {
		scale, unit = 1.0/(1<<20), "MiB"
	}
	p := newPlot(l.Signal, unit, a)
	mean, lo, hi := plotter.XYs{}, plotter.XYs{}, plotter.XYs{}
	for _, pt := range s.Points {
		x := a.x(pt.Start + s.Step/2)
		mean = append(mean, plotter.XY{X: x, Y: pt.Mean() * scale})
		lo = append(lo, plotter.XY{X: x, Y: pt.Min * scale})
		hi = append(hi, plotter.XY{X: x, Y: pt.Max * scale})
	}
	if err := addLine(p, "step min", finite(lo), color.Gray{Y: 170}, false); err != nil {
		return Figure{}, err
	}
	if err := addLine(p, "step max", finite(hi), color.Gray{Y: 120}, false); err != nil {
		return Figure{}, err
	}
	if err := addLine(p, "mean", finite(mean), palette[0], false); err != nil {
		return Figure{}, err
	}
	if w, err := time.ParseDuration(l.SlopeWindow); err == nil && w > 0 {
		window = w // the window the slope came from
	}
	if n := len(s.Points); n > 0 && l.Slope != nil {
		end := s.Points[n-1].Start + s.Step
		start := max(end-window, 0)
		y1 := s.Points[n-1].Mean() * scale
		if !math.IsNaN(y1) {
			span := (end - start).Seconds()
			y0 := y1 - *l.Slope*span*scale
			if err := addLine(p, "fitted slope ("+perMinute(*l.Slope, l.Unit)+")",
				plotter.XYs{{X: a.x(start), Y: y0}, {X: a.x(end), Y: y1}}, palette[2], false); err != nil {
				return Figure{}, err
			}
			if l.Threshold > 0 {
				if err := addLine(p, "threshold ("+perMinute(l.Threshold, l.Unit)+")",
					plotter.XYs{{X: a.x(start), Y: y0}, {X: a.x(end), Y: y0 + l.Threshold*span*scale}}, palette[2], true); err != nil {
					return Figure{}, err
				}
			}
		}
	}
	p.Add(o)
	svg, err := svgOf(p)
	return Figure{Title: l.Signal, SVG: svg}, err
}

// rateFigure plots a component's op rate by outcome, per step.
func rateFigure(comp string, ops []history.Series, a timeAxis, o overlay) (Figure, error) {
	p := newPlot(comp+": operations per second by outcome", "ops/s", a)
	byOutcome := map[string]map[time.Duration]float64{}
	var step time.Duration
	for _, s := range ops {
		step = s.Step
		m := byOutcome[s.Labels["outcome"]]
		if m == nil {
			m = map[time.Duration]float64{}
			byOutcome[s.Labels["outcome"]] = m
		}
		for _, pt := range s.Points {
			m[pt.Start] += pt.Increase
		}
	}
	for i, outcome := range sortedKeys(byOutcome) {
		if err := addLine(p, outcome, stepRates(byOutcome[outcome], step, a), palette[i%len(palette)], false); err != nil {
			return Figure{}, err
		}
	}
	p.Add(o)
	svg, err := svgOf(p)
	return Figure{Title: comp + " rate", SVG: svg}, err
}

// latencyFigure plots a component's latency quantiles, all ops merged,
// per step.
func latencyFigure(comp string, hists []history.Series, a timeAxis, o overlay) (Figure, error) {
	p := newPlot(comp+": latency (all ops)", "seconds", a)
	merged := map[time.Duration]*history.Point{}
	var step time.Duration
	for _, s := range hists {
		step = s.Step
		for _, pt := range s.Points {
			m := merged[pt.Start]
			if m == nil {
				m = &history.Point{Start: pt.Start, Bounds: s.Bounds, Buckets: make([]float64, len(s.Bounds))}
				merged[pt.Start] = m
			}
			if len(pt.Buckets) != len(m.Buckets) {
				continue // a series with other bounds: not mergeable
			}
			m.Count += pt.Count
			m.Sum += pt.Sum
			for i, b := range pt.Buckets {
				m.Buckets[i] += b
			}
		}
	}
	for i, q := range []float64{0.5, 0.99} {
		var xys plotter.XYs
		for _, start := range sortedKeys(merged) {
			xys = append(xys, plotter.XY{X: a.x(start + step/2), Y: merged[start].Quantile(q)})
		}
		if err := addLine(p, fmt.Sprintf("p%g", q*100), finite(xys), palette[i], false); err != nil {
			return Figure{}, err
		}
	}
	p.Add(o)
	svg, err := svgOf(p)
	return Figure{Title: comp + " latency", SVG: svg}, err
}

func stepRates(m map[time.Duration]float64, step time.Duration, a timeAxis) plotter.XYs {
	var xys plotter.XYs
	for _, start := range sortedKeys(m) {
		xys = append(xys, plotter.XY{X: a.x(start + step/2), Y: m[start] / step.Seconds()})
	}
	return xys
}

// figures draws every plot the history allows, each with the fault
// windows and alerts.
func figures(r Report, h *history.History, window time.Duration) []Figure {
	if h == nil {
		return nil
	}
	series := h.Series()
	a := axisFor(r.Run.Elapsed)
	o := overlay{axis: a, faults: r.Faults.Rows, alerts: r.Alerts, end: r.Run.Elapsed}
	var out []Figure
	for _, l := range r.Leaks {
		ss := find(series, "soakd_leak_signal_value", map[string]string{"signal": l.Signal})
		if len(ss) == 0 || len(ss[0].Points) == 0 {
			continue
		}
		so := o
		so.signal = l.Signal
		out = append(out, orErr(l.Signal)(leakFigure(l, ss[0], window, a, so)))
	}
	for _, l := range r.Load {
		lab := map[string]string{"component": l.Component}
		if ops := find(series, "soakd_ops_total", lab); len(ops) > 0 {
			out = append(out, orErr(l.Component+" rate")(rateFigure(l.Component, ops, a, o)))
		}
		if hs := find(series, "soakd_op_duration_seconds", lab); len(hs) > 0 {
			out = append(out, orErr(l.Component+" latency")(latencyFigure(l.Component, hs, a, o)))
		}
	}
	return out
}

// orErr turns a plot that failed into a figure that says why.
func orErr(title string) func(Figure, error) Figure {
	return func(f Figure, err error) Figure {
		if err != nil {
			return Figure{Title: title, Err: err.Error()}
		}
		return f
	}
}

func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	keys := slices.Collect(maps.Keys(m))
	slices.Sort(keys)
	return keys
}

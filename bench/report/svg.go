package report

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
)

// point is one (x, y) of a series; NaN y breaks the line.
type point struct{ x, y float64 }

// series is one line of a chart.
type series struct {
	name  string
	color string
	dash  bool
	pts   []point
}

// band shades an x range (a phase of the run).
type band struct {
	from, to float64
	label    string
}

// tick is an axis tick at value v labelled label.
type tick struct {
	v     float64
	label string
}

// chart is a line chart rendered as inline SVG.
type chart struct {
	title          string
	xLabel, yLabel string
	logY           bool
	xTicks         []tick // nil: automatic
	xMin, xMax     float64
	fixedX         bool
	series         []series
	bands          []band
}

const (
	chartW, chartH                     = 560, 300
	padL, padR, padT, padB             = 62, 16, 44, 42
	plotW, plotH                       = chartW - padL - padR, chartH - padT - padB
	bandFill1, bandFill2, bandFillText = "#f3f4f6", "#e9ecf1", "#6b7280"
)

// palette holds distinct, colour-blind-friendly colours.
var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"}

func esc(s string) string { return html.EscapeString(s) }

func fnum(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// niceStep returns a round step giving about n intervals over span.
func niceStep(span float64, n int) float64 {
	if span <= 0 {
		return 1
	}
	raw := span / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if raw <= m*mag {
			return m * mag
		}
	}
	return 10 * mag
}

// fmtValue formats an axis value without useless digits.
func fmtValue(v float64) string {
	switch a := math.Abs(v); {
	case a == 0:
		return "0"
	case a >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case a >= 1e4:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	case a >= 1:
		return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
	default:
		return strconv.FormatFloat(v, 'g', 2, 64)
	}
}

// render returns the chart's SVG element.
func (c chart) render() string {
	var b strings.Builder
	// Data ranges.
	xMin, xMax := math.Inf(1), math.Inf(-1)
	yMin, yMax := math.Inf(1), math.Inf(-1)
	for _, s := range c.series {
		for _, p := range s.pts {
			if math.IsNaN(p.y) || (c.logY && p.y <= 0) {
				continue
			}
			xMin, xMax = math.Min(xMin, p.x), math.Max(xMax, p.x)
			yMin, yMax = math.Min(yMin, p.y), math.Max(yMax, p.y)
		}
	}
	if c.fixedX {
		xMin, xMax = c.xMin, c.xMax
	}
	empty := math.IsInf(xMin, 0) || math.IsInf(yMin, 0)
	if empty {
		xMin, xMax, yMin, yMax = 0, 1, 0, 1
	}
	if xMax == xMin {
		xMax = xMin + 1
	}
	var yTicks []tick
	if c.logY {
		lo := math.Floor(math.Log10(yMin))
		hi := math.Ceil(math.Log10(yMax))
		if hi == lo {
			hi++
		}
		yMin, yMax = math.Pow(10, lo), math.Pow(10, hi)
		for e := lo; e <= hi; e++ {
			yTicks = append(yTicks, tick{math.Pow(10, e), fmtValue(math.Pow(10, e))})
		}
	} else {
		yMin = math.Min(0, yMin)
		if yMax <= yMin {
			yMax = yMin + 1
		}
		step := niceStep(yMax-yMin, 5)
		yMax = math.Ceil(yMax/step) * step
		for v := yMin; v <= yMax+step/2; v += step {
			yTicks = append(yTicks, tick{v, fmtValue(v)})
		}
	}
	xTicks := c.xTicks
	if xTicks == nil {
		step := niceStep(xMax-xMin, 6)
		for v := math.Ceil(xMin/step) * step; v <= xMax+step/1000; v += step {
			xTicks = append(xTicks, tick{v, fmtValue(v)})
		}
	}
	sx := func(x float64) float64 { return padL + (x-xMin)/(xMax-xMin)*plotW }
	sy := func(y float64) float64 {
		if c.logY {
			return padT + plotH - (math.Log10(y)-math.Log10(yMin))/(math.Log10(yMax)-math.Log10(yMin))*plotH
		}
		return padT + plotH - (y-yMin)/(yMax-yMin)*plotH
	}
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s">`,
		chartW, chartH, chartW, chartH, esc(c.title))
	fmt.Fprintf(&b, `<title>%s</title>`, esc(c.title))
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>`, chartW, chartH)
	fmt.Fprintf(&b, `<text x="%d" y="18" class="ct">%s</text>`, padL, esc(c.title))
	// Phase bands.
	for i, bd := range c.bands {
		x0, x1 := sx(math.Max(bd.from, xMin)), sx(math.Min(bd.to, xMax))
		if x1 <= x0 {
			continue
		}
		fill := bandFill1
		if i%2 == 1 {
			fill = bandFill2
		}
		fmt.Fprintf(&b, `<rect x="%s" y="%d" width="%s" height="%d" fill="%s"><title>%s</title></rect>`,
			fnum(x0), padT, fnum(x1-x0), plotH, fill, esc(bd.label))
		if x1-x0 > 40 {
			fmt.Fprintf(&b, `<text x="%s" y="%d" class="band" fill="%s">%s</text>`, fnum(x0+3), padT+11, bandFillText, esc(bd.label))
		}
	}
	// Grid and axes.
	for _, t := range yTicks {
		y := sy(t.v)
		fmt.Fprintf(&b, `<line x1="%d" y1="%s" x2="%d" y2="%s" class="grid"/>`, padL, fnum(y), padL+plotW, fnum(y))
		fmt.Fprintf(&b, `<text x="%d" y="%s" class="yt">%s</text>`, padL-6, fnum(y+4), esc(t.label))
	}
	for _, t := range xTicks {
		if t.v < xMin-1e-9 || t.v > xMax+1e-9 {
			continue
		}
		x := sx(t.v)
		fmt.Fprintf(&b, `<line x1="%s" y1="%d" x2="%s" y2="%d" class="grid"/>`, fnum(x), padT, fnum(x), padT+plotH)
		fmt.Fprintf(&b, `<text x="%s" y="%d" class="xt">%s</text>`, fnum(x), padT+plotH+16, esc(t.label))
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" class="frame"/>`, padL, padT, plotW, plotH)
	fmt.Fprintf(&b, `<text x="%d" y="%d" class="xl">%s</text>`, padL+plotW/2, chartH-6, esc(c.xLabel))
	fmt.Fprintf(&b, `<text x="14" y="%d" class="yl" transform="rotate(-90 14 %d)">%s</text>`, padT+plotH/2, padT+plotH/2, esc(c.yLabel))
	if empty {
		fmt.Fprintf(&b, `<text x="%d" y="%d" class="none">no data</text>`, padL+plotW/2, padT+plotH/2)
	}
	// Lines.
	for _, s := range c.series {
		var d strings.Builder
		pen := false
		n := 0
		for _, p := range s.pts {
			if math.IsNaN(p.y) || (c.logY && p.y <= 0) || p.x < xMin || p.x > xMax {
				pen = false
				continue
			}
			cmd := "L"
			if !pen {
				cmd = "M"
			}
			fmt.Fprintf(&d, "%s%s %s ", cmd, fnum(sx(p.x)), fnum(sy(math.Min(p.y, yMax))))
			pen = true
			n++
		}
		if n == 0 {
			continue
		}
		dash := ""
		if s.dash {
			dash = ` stroke-dasharray="6 4"`
		}
		fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="%s" stroke-width="2"%s><title>%s</title></path>`,
			strings.TrimSpace(d.String()), s.color, dash, esc(s.name))
		if n == 1 { // a lone point is invisible as a path
			for _, p := range s.pts {
				if !math.IsNaN(p.y) && (!c.logY || p.y > 0) {
					fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`, fnum(sx(p.x)), fnum(sy(p.y)), s.color)
				}
			}
		}
	}
	// Legend, above the plot.
	lx := float64(padL)
	for _, s := range c.series {
		dash := ""
		if s.dash {
			dash = ` stroke-dasharray="6 4"`
		}
		fmt.Fprintf(&b, `<line x1="%s" y1="32" x2="%s" y2="32" stroke="%s" stroke-width="3"%s/>`, fnum(lx), fnum(lx+18), s.color, dash)
		fmt.Fprintf(&b, `<text x="%s" y="36" class="lg">%s</text>`, fnum(lx+22), esc(s.name))
		lx += 30 + 6.5*float64(len(s.name))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

//go:build ignore

// Table prints `make bench`'s one table: every benchmark's metrics with
// benchstat's median and confidence interval, the range over runs, each
// peer against lockmgr, and the targets met and missed.
//
//	go run table.go BENCHSTAT.csv RESULTS.txt
//
// benchstat gives the statistics but prints one table per unit, and
// knows nothing of peers or targets; the raw results give the per-run
// values, so that a target must hold in every run, not only at the median.
package main

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// A cell is one benchmark's one metric.
type cell struct {
	median float64
	ci     string    // benchstat's ±, such as "3%"
	runs   []float64 // from the raw results
}

type key struct{ row, unit string }

type table struct {
	rows  []string            // in order of first appearance
	units map[string][]string // each row's units, in order of first appearance
	cells map[key]*cell
}

// gomaxprocs is the -N that go test appends to a benchmark's name.
var gomaxprocs = regexp.MustCompile(`-\d+$`)

func rowName(name string) string {
	return gomaxprocs.ReplaceAllString(strings.TrimPrefix(name, "Benchmark"), "")
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: go run table.go BENCHSTAT.csv RESULTS.txt")
		os.Exit(2)
	}
	t := &table{units: map[string][]string{}, cells: map[key]*cell{}}
	if err := t.readRaw(os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "table:", err)
		os.Exit(1)
	}
	if err := t.readBenchstat(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "table:", err)
		os.Exit(1)
	}
	t.print(os.Stdout)
}

// readRaw reads go test -bench output: "BenchmarkX/peer-2  N  v unit  v unit ...".
func (t *table) readRaw(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") || len(fields)%2 != 0 {
			continue
		}
		row := rowName(fields[0])
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				continue
			}
			unit := fields[i+1]
			if unit == "ns/op" {
				unit, v = "sec/op", v/1e9 // as benchstat names it
			}
			t.cell(row, unit).runs = append(t.cell(row, unit).runs, v)
		}
	}
	return sc.Err()
}

func (t *table) cell(row, unit string) *cell {
	k := key{row, unit}
	c := t.cells[k]
	if c == nil {
		c = &cell{median: math.NaN()}
		t.cells[k] = c
		if _, ok := t.units[row]; !ok {
			t.rows = append(t.rows, row)
		}
		t.units[row] = append(t.units[row], unit)
	}
	return c
}

// readBenchstat reads benchstat -format csv: per unit, a header
// ",FILE," then ",UNIT,CI", then "name,median,ci" rows.
func (t *table) readBenchstat(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	unit := ""
	for {
		rec, err := r.Read()
		if err != nil {
			break
		}
		switch {
		case len(rec) < 3:
		case rec[0] == "" && rec[2] == "CI":
			unit = rec[1]
		case rec[0] == "" || rec[0] == "geomean" || unit == "":
		default:
			c := t.cells[key{rowName(rec[0]), unit}]
			if c == nil {
				continue
			}
			if v, err := strconv.ParseFloat(rec[1], 64); err == nil {
				c.median = v
			}
			c.ci = rec[2]
		}
	}
	return nil
}

// A target is a goal for one cell. It is met in a run when ok holds for
// that run's value; look finds another cell's median.
type target struct {
	row, unit string
	goal      string
	ok        func(v float64, look func(row, unit string) float64) bool
}

func atMost(limit float64) func(float64, func(string, string) float64) bool {
	return func(v float64, _ func(string, string) float64) bool { return v <= limit }
}

func equal(want float64) func(float64, func(string, string) float64) bool {
	return func(v float64, _ func(string, string) float64) bool { return v == want }
}

// atLeastTimes is met when the value is at least k times another row's
// median: today's build against the old one timed in the same run.
func atLeastTimes(k float64, row, unit string) func(float64, func(string, string) float64) bool {
	return func(v float64, look func(string, string) float64) bool { return v >= k*look(row, unit) }
}

// noWorse is met when a time is at most another row's median (the old
// build's, in the same run) with the slack given, a fraction of it.
func noWorse(row, unit string, slack float64) func(float64, func(string, string) float64) bool {
	return func(v float64, look func(string, string) float64) bool { return v <= (1+slack)*look(row, unit) }
}

// The targets of issue 11 (the descriptor travels to the host) and those
// before it. A target naming an .../old row has no data without OLD=DIR.
var targets = []target{
	{"Uncontended/lockmgr-plugin", "p50-µs", "≤ 70", atMost(70)},
	{"Uncontended/lockmgr-plugin-ofd", "p50-µs", "≤ 70", atMost(70)},
	{"Handoff/lockmgr-plugin", "p50-µs", "≤ 1000", atMost(1000)},
	{"Handoff/lockmgr-plugin", "p99-µs", "≤ 10000", atMost(10000)},
	{"Handoff/lockmgr-plugin", "p50-µs", "≤ old +10%", noWorse("Handoff/lockmgr-plugin/old", "p50-µs", 0.10)},
	{"Contended/lockmgr-plugin", "cycles/s", "≥ 2 × old", atLeastTimes(2, "Contended/lockmgr-plugin/old", "cycles/s")},
	{"Contended/lockmgr-plugin", "lost-updates", "= 0", equal(0)},
	{"DeadHolder/lockmgr-plugin", "p50-ms", "≤ old +10%", noWorse("DeadHolder/lockmgr-plugin/old", "p50-ms", 0.10)},
	{"DeadHolder/lockmgr-plugin", "max-ms", "≤ 50", atMost(50)},
	{"DeadHolder/lockmgr-plugin", "within-50ms", "= trials", func(v float64, look func(string, string) float64) bool {
		return v == look("DeadHolder/lockmgr-plugin", "trials")
	}},
	{"Timeout/lockmgr-plugin", "late-p50-ms", "≤ 20", atMost(20)},
	{"Timeout/lockmgr-plugin", "late-p99-ms", "≤ 20", atMost(20)},
	{"Timeout/lockmgr-plugin", "late-max-ms", "≤ 20", atMost(20)},
	{"Timeout/lockmgr-plugin", "canceled-not-timeout", "= 0", equal(0)},
	{"Scale/lockmgr-plugin", "held", "= 10000", equal(10000)},
	{"Scale/lockmgr-plugin", "ratio-10k/1", "≤ 1.5", atMost(1.5)},
	{"Stampede/lockmgr-run", "ran-once", "= commands", func(v float64, look func(string, string) float64) bool {
		return v == look("Stampede/lockmgr-run", "commands")
	}},
	{"Stampede/lockmgr-run", "not-once", "= 0", equal(0)},
	{"Stampede/lockmgr-run", "error-lines", "= 0", equal(0)},
	{"Stampede/lockmgr-run", "plugins-left", "= 0", equal(0)},
	{"Stampede/lockmgr-run", "killed", "= 0", equal(0)},
}

// Counts and ratios are not compared with a peer's.
var noPeerRatio = map[string]bool{
	"lost-updates": true, "within-50ms": true, "canceled-not-timeout": true, "trials": true, "held": true, "ratio-10k/1": true,
	"commands": true, "waiting": true, "plugins-waiting": true, "ran-once": true, "not-once": true, "error-lines": true, "plugins-left": true, "killed": true,
}

// groupOrder is the order of the benchmarks in the table, the order of
// the comparisons in the brief; others follow.
var groupOrder = []string{"Uncontended", "PipeRoundTrip", "Handoff", "Contended", "DeadHolder", "Timeout", "Scale", "CLIRunTrue", "Stampede"}

// unitOrder puts each row's metrics in reading order; others follow.
var unitOrder = []string{
	"sec/op", "p50-µs", "p99-µs", "max-µs", "cycles/s", "lost-updates",
	"p50-ms", "max-ms", "within-50ms", "trials", "late-p50-ms", "late-p99-ms", "late-max-ms", "canceled-not-timeout",
	"held", "p50-µs-1-held", "p50-µs-10k-held", "ratio-10k/1", "lock-10k-ms", "rss-MiB", "KiB/lock",
	"commands", "start-ms", "drain-ms", "pss-MiB", "waiting", "plugins-waiting", "ran-once", "not-once", "error-lines", "plugins-left", "killed",
}

func (t *table) look(row, unit string) float64 {
	if c := t.cells[key{row, unit}]; c != nil {
		return c.median
	}
	return math.NaN()
}

func (t *table) verdict(row, unit string, c *cell) string {
	for _, tg := range targets {
		if tg.row != row || tg.unit != unit {
			continue
		}
		met := 0
		for _, v := range c.runs {
			if tg.ok(v, t.look) {
				met++
			}
		}
		n := len(c.runs)
		switch {
		case math.IsNaN(c.median):
			return tg.goal + ": no data"
		case met == n:
			return fmt.Sprintf("%s: meets (%d/%d runs)", tg.goal, met, n)
		case tg.ok(c.median, t.look):
			return fmt.Sprintf("%s: median meets, %d/%d runs", tg.goal, met, n)
		default:
			return fmt.Sprintf("%s: MISSES (%d/%d runs)", tg.goal, met, n)
		}
	}
	return ""
}

func (t *table) print(w *os.File) {
	out := bufio.NewWriter(w)
	defer out.Flush()
	head := []string{"BENCHMARK", "METRIC", "MEDIAN", "±CI", "RUNS", "MIN … MAX", "LOCKMGR÷THIS", "TARGET"}
	var lines [][]string
	group := ""
	ref := ""
	rows := slices.Clone(t.rows)
	slices.SortStableFunc(rows, func(a, b string) int { return groupRank(a) - groupRank(b) })
	for _, row := range rows {
		g, _, _ := strings.Cut(row, "/")
		if g != group {
			if group != "" {
				lines = append(lines, nil)
			}
			group, ref = g, row // the first peer of a group is lockmgr's
		}
		units := slices.Clone(t.units[row])
		slices.SortStableFunc(units, func(a, b string) int { return rank(a) - rank(b) })
		for i, unit := range units {
			c := t.cells[key{row, unit}]
			name := row
			if i > 0 {
				name = ""
			}
			shown, scale := unit, 1.0
			if unit == "sec/op" {
				shown, scale = "µs/op", 1e6
			}
			lo, hi := slices.Min(c.runs), slices.Max(c.runs)
			ratio := ""
			if row != ref && !noPeerRatio[unit] {
				if r := t.look(ref, unit) / c.median; !math.IsNaN(r) && !math.IsInf(r, 0) && r != 0 {
					ratio = num(r) + "×"
				}
			}
			ci := c.ci
			if ci != "" && ci != "∞" {
				ci = "±" + ci
			}
			lines = append(lines, []string{name, shown, num(c.median * scale), ci, strconv.Itoa(len(c.runs)),
				num(lo*scale) + " … " + num(hi*scale), ratio, t.verdict(row, unit, c)})
		}
	}
	widths := make([]int, len(head))
	for _, l := range append([][]string{head}, lines...) {
		for i, f := range l {
			widths[i] = max(widths[i], len([]rune(f)))
		}
	}
	right := map[int]bool{2: true, 3: true, 4: true, 5: true, 6: true}
	for _, l := range append([][]string{head}, lines...) {
		if l == nil {
			fmt.Fprintln(out)
			continue
		}
		var b strings.Builder
		for i, f := range l {
			pad := strings.Repeat(" ", widths[i]-len([]rune(f)))
			if right[i] {
				b.WriteString(pad + f)
			} else {
				b.WriteString(f + pad)
			}
			b.WriteString("  ")
		}
		fmt.Fprintln(out, strings.TrimRight(b.String(), " "))
	}
	fmt.Fprintln(out)
	fmt.Fprintln(out, "MEDIAN and ±CI (95%) are benchstat's, over RUNS runs; MIN … MAX is over the runs.")
	fmt.Fprintln(out, "LOCKMGR÷THIS is the group's first row's median over this row's: above 1 for a time")
	fmt.Fprintln(out, "means lockmgr takes longer, below 1 for a rate means it does less.")
	fmt.Fprintln(out, "A target must hold in every run to meet; \"median meets\" means some runs miss.")
	t.printRatios(out)
}

// A ratio is one median over another, for the comparisons a row's
// LOCKMGR÷THIS does not make: against the pipe's round trip, against
// flock(1) for each build, and the old build against today's.
type ratio struct {
	label        string
	numRow, numU string
	denRow, denU string
}

var ratios = []ratio{
	{"Lock+Unlock flock plugin p50 ÷ pipe round trip p50", "Uncontended/lockmgr-plugin", "p50-µs", "PipeRoundTrip", "p50-µs"},
	{"Lock+Unlock ofd plugin p50 ÷ pipe round trip p50", "Uncontended/lockmgr-plugin-ofd", "p50-µs", "PipeRoundTrip", "p50-µs"},
	{"Lock+Unlock old flock plugin p50 ÷ pipe round trip p50", "Uncontended/lockmgr-plugin/old", "p50-µs", "PipeRoundTrip", "p50-µs"},
	{"Lock+Unlock p50, old ÷ today", "Uncontended/lockmgr-plugin/old", "p50-µs", "Uncontended/lockmgr-plugin", "p50-µs"},
	{"Contended cycles/s, today ÷ old (target ≥ 2)", "Contended/lockmgr-plugin", "cycles/s", "Contended/lockmgr-plugin/old", "cycles/s"},
	{"Handoff p50, today ÷ old", "Handoff/lockmgr-plugin", "p50-µs", "Handoff/lockmgr-plugin/old", "p50-µs"},
	{"DeadHolder p50, today ÷ old", "DeadHolder/lockmgr-plugin", "p50-ms", "DeadHolder/lockmgr-plugin/old", "p50-ms"},
	{"lockmgr run FILE true ÷ flock FILE true, today", "CLIRunTrue/lockmgr-run", "sec/op", "CLIRunTrue/flock-cmd", "sec/op"},
	{"lockmgr run FILE true ÷ flock FILE true, old", "CLIRunTrue/lockmgr-run/old", "sec/op", "CLIRunTrue/flock-cmd", "sec/op"},
	{"lockmgr run -F FILE true ÷ flock FILE true", "CLIRunTrue/lockmgr-run-F", "sec/op", "CLIRunTrue/flock-cmd", "sec/op"},
	{"flock personality ÷ flock FILE true", "CLIRunTrue/flock-personality", "sec/op", "CLIRunTrue/flock-cmd", "sec/op"},
	{"Stampede start, today ÷ flock(1)", "Stampede/lockmgr-run", "start-ms", "Stampede/flock-cmd", "start-ms"},
	{"Stampede start, old ÷ flock(1)", "Stampede/lockmgr-run/old", "start-ms", "Stampede/flock-cmd", "start-ms"},
	{"Stampede drain, today ÷ flock(1)", "Stampede/lockmgr-run", "drain-ms", "Stampede/flock-cmd", "drain-ms"},
	{"Stampede drain, old ÷ flock(1)", "Stampede/lockmgr-run/old", "drain-ms", "Stampede/flock-cmd", "drain-ms"},
	{"Stampede Pss, today ÷ flock(1)", "Stampede/lockmgr-run", "pss-MiB", "Stampede/flock-cmd", "pss-MiB"},
	{"Stampede Pss, old ÷ flock(1)", "Stampede/lockmgr-run/old", "pss-MiB", "Stampede/flock-cmd", "pss-MiB"},
}

func (t *table) printRatios(out *bufio.Writer) {
	var lines [][2]string
	for _, r := range ratios {
		v := t.look(r.numRow, r.numU) / t.look(r.denRow, r.denU)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		lines = append(lines, [2]string{r.label, num(v) + "×"})
	}
	if len(lines) == 0 {
		return
	}
	width := 0
	for _, l := range lines {
		width = max(width, len([]rune(l[0])))
	}
	fmt.Fprintln(out)
	fmt.Fprintln(out, "RATIOS OF MEDIANS")
	for _, l := range lines {
		fmt.Fprintf(out, "%s%s  %8s\n", l[0], strings.Repeat(" ", width-len([]rune(l[0]))), l[1])
	}
}

func groupRank(row string) int {
	g, _, _ := strings.Cut(row, "/")
	if i := slices.Index(groupOrder, g); i >= 0 {
		return i
	}
	return len(groupOrder)
}

func rank(unit string) int {
	if i := slices.Index(unitOrder, unit); i >= 0 {
		return i
	}
	return len(unitOrder)
}

// num prints v with about four significant digits and no exponent.
func num(v float64) string {
	switch a := math.Abs(v); {
	case math.IsNaN(v):
		return "—"
	case a == 0 || a >= 1000 || (v == math.Trunc(v) && a < 1e15):
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case a >= 0.01:
		return strconv.FormatFloat(v, 'f', 3, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

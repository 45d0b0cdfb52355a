package report

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// timingsDoc is the schema of timings.json.
type timingsDoc struct {
	RunID        string                `json:"run_id"`
	K3sVersion   string                `json:"k3s_version"`
	K3sImage     string                `json:"k3s_image"`
	ImageSource  string                `json:"image_source"`
	Started      time.Time             `json:"started,omitzero"`
	Succeeded    bool                  `json:"succeeded"`
	TotalSeconds float64               `json:"total_seconds"`
	Parallel     int                   `json:"parallel"`
	Profiles     map[string]profileDoc `json:"profiles"`
}

type profileDoc struct {
	Phases      map[string]float64         `json:"phases"` // seconds
	Specs       Counts                     `json:"specs"`
	Perf        map[string]PerfMeasurement `json:"perf,omitempty"` // by scope; the baseline format
	Diagnostics []string                   `json:"diagnostics,omitempty"`
}

func seconds(d time.Duration) float64 { return math.Round(d.Seconds()*1000) / 1000 }

func (res *result) timingsJSON() timingsDoc {
	doc := timingsDoc{
		RunID: res.RunID, K3sVersion: res.K3sVersion, K3sImage: res.K3sImage, ImageSource: res.ImageSource,
		Started: res.Start, Succeeded: res.Succeeded, TotalSeconds: seconds(res.Total), Parallel: res.Parallel,
		Profiles: map[string]profileDoc{},
	}
	for _, p := range res.Profiles {
		pd := profileDoc{Phases: map[string]float64{}, Specs: p.Total, Diagnostics: p.Diagnostics}
		for _, ph := range p.Phases {
			pd.Phases[ph.Name] = seconds(ph.Duration)
		}
		if len(p.Perf) > 0 {
			pd.Perf = p.Perf
		}
		doc.Profiles[p.Name] = pd
	}
	return doc
}

func renderSummary(res *result) string {
	var b strings.Builder
	verdict := "PASSED"
	if !res.Succeeded {
		verdict = "FAILED"
	}
	fmt.Fprintf(&b, "# k3snet network conformance: %s\n\n", verdict)
	b.WriteString("| | |\n|---|---|\n")
	row := func(k, v string) {
		if v == "" {
			v = "–"
		} else {
			v = code(v)
		}
		fmt.Fprintf(&b, "| %s | %s |\n", k, cell(v))
	}
	row("Run id", res.RunID)
	row("k3s version", res.K3sVersion)
	row("Node image", res.K3sImage)
	row("Image source", res.ImageSource)
	if !res.Start.IsZero() {
		fmt.Fprintf(&b, "| Started | %s |\n", res.Start.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(&b, "| Duration | %s |\n", roundDuration(res.Total))
	fmt.Fprintf(&b, "| Clusters at once | %d |\n", res.Parallel)
	for _, r := range res.SpecialFailureReasons {
		fmt.Fprintf(&b, "| Run failure | %s |\n", cell(r))
	}

	b.WriteString("\n## Results by profile and area\n\n")
	if len(res.Areas) == 0 {
		b.WriteString("No spec ran.\n")
	} else {
		b.WriteString("Cells are passed/failed/skipped. A spec with several `area:` labels counts in each of them; *total* counts every spec once.\n\n")
		b.WriteString("| profile |")
		for _, a := range res.Areas {
			b.WriteString(" " + cell(a) + " |")
		}
		b.WriteString(" total |\n|---|")
		b.WriteString(strings.Repeat("---|", len(res.Areas)+1))
		b.WriteString("\n")
		for _, p := range res.Profiles {
			if p.Total.total() == 0 {
				continue
			}
			b.WriteString("| " + cell(p.Name) + " |")
			for _, a := range res.Areas {
				b.WriteString(" " + countsCell(p.Areas[a]) + " |")
			}
			t := p.Total
			b.WriteString(" " + countsCell(&t) + " |\n")
		}
	}

	if len(res.Failures) > 0 {
		b.WriteString("\n### Failures\n\n")
		for _, f := range res.Failures {
			writeFailure(&b, f)
		}
	}
	if len(res.SuiteFailures) > 0 {
		b.WriteString("\n### Suite-level failures\n\n")
		for _, f := range res.SuiteFailures {
			writeFailure(&b, f)
		}
	}
	if len(res.Skips) > 0 {
		b.WriteString("\n### Skipped\n\n")
		for _, g := range res.Skips {
			names := g.Specs
			more := ""
			if len(names) > maxSkippedNames {
				more = fmt.Sprintf("; and %d more", len(names)-maxSkippedNames)
				names = names[:maxSkippedNames]
			}
			fmt.Fprintf(&b, "- **%s**: %s (%d): %s%s\n", g.Profile, code(g.Reason), len(g.Specs), strings.Join(names, "; "), more)
		}
	}

	writePhases(&b, res)
	writePerf(&b, res)

	if len(res.EntryScopes) > 0 {
		b.WriteString("\n## Report entries\n")
		scopes := append([]string(nil), res.EntryScopes...)
		sort.Slice(scopes, func(i, j int) bool { return labelLess(scopes[i], scopes[j]) })
		for _, s := range scopes {
			fmt.Fprintf(&b, "\n### %s\n\n", s)
			for _, e := range res.Entries[s] {
				if e.Value == "" {
					fmt.Fprintf(&b, "- %s\n", e.Name)
					continue
				}
				fmt.Fprintf(&b, "- %s: %s\n", e.Name, code(e.Value))
			}
		}
	}
	return b.String()
}

func writeFailure(b *strings.Builder, f failureItem) {
	fmt.Fprintf(b, "- **%s** · %s: %s", f.Profile, f.Spec, f.State)
	if f.Message != "" {
		fmt.Fprintf(b, ": %s", code(f.Message))
	}
	if f.Location != "" {
		fmt.Fprintf(b, " (%s)", f.Location)
	}
	b.WriteString("\n")
	for _, a := range f.Also {
		fmt.Fprintf(b, "  - also %s\n", code(a))
	}
	if f.Diagnostics != "" {
		fmt.Fprintf(b, "  - diagnostics: %s\n", code(f.Diagnostics))
	}
}

func writePhases(b *strings.Builder, res *result) {
	var names []string
	seen := map[string]bool{}
	for _, n := range PhaseOrder {
		for _, p := range res.Profiles {
			if hasPhase(p.Phases, n) && !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		}
	}
	for _, p := range res.Profiles {
		for _, ph := range p.Phases {
			if !seen[ph.Name] {
				seen[ph.Name] = true
				names = append(names, ph.Name)
			}
		}
	}
	if len(names) == 0 {
		return
	}
	b.WriteString("\n## Phase timings\n\n| profile |")
	for _, n := range names {
		b.WriteString(" " + cell(n) + " |")
	}
	b.WriteString("\n|---|" + strings.Repeat("---:|", len(names)) + "\n")
	for _, p := range res.Profiles {
		if len(p.Phases) == 0 {
			continue
		}
		b.WriteString("| " + cell(p.Name) + " |")
		for _, n := range names {
			v := "–"
			for _, ph := range p.Phases {
				if ph.Name == n {
					v = roundDuration(ph.Duration)
				}
			}
			b.WriteString(" " + v + " |")
		}
		b.WriteString("\n")
	}
}

func writePerf(b *strings.Builder, res *result) {
	header := false
	for _, p := range res.Profiles {
		scopes := make([]string, 0, len(p.Perf))
		for s := range p.Perf {
			scopes = append(scopes, s)
		}
		sort.Strings(scopes)
		for _, s := range scopes {
			if !header {
				b.WriteString("\n## Performance\n\n| profile | scope | backend | throughput | rr p50 | rr p99 |\n|---|---|---|---:|---:|---:|\n")
				header = true
			}
			m := p.Perf[s]
			tp, p50, p99 := "–", "–", "–"
			if m.ThroughputBps > 0 {
				tp = formatBps(m.ThroughputBps)
			}
			if m.RRP50us > 0 {
				p50 = formatUs(m.RRP50us)
			}
			if m.RRP99us > 0 {
				p99 = formatUs(m.RRP99us)
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s |\n", cell(p.Name), cell(s), cell(orDefault(m.Backend, "–")), tp, p50, p99)
		}
	}
}

// countsCell renders passed/failed/skipped, bold when something failed so a red cell is
// found at a glance.
func countsCell(c *Counts) string {
	if c == nil || c.total() == 0 {
		return "–"
	}
	s := fmt.Sprintf("%d/%d/%d", c.Passed, c.Failed, c.Skipped)
	if c.Failed > 0 {
		return "**" + s + "**"
	}
	return s
}

// code puts text into an inline code span: failure messages are full of <angle brackets>
// and *stars* that Markdown would otherwise eat.
func code(s string) string {
	s = strings.ReplaceAll(strings.ReplaceAll(s, "\r", " "), "\n", " ")
	if strings.Contains(s, "`") {
		return "`` " + s + " ``"
	}
	return "`" + s + "`"
}

// cell escapes what would end a table cell.
func cell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ")
}

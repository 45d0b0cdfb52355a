package report

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/onsi/ginkgo/v2/types"
)

// noLabel stands for a missing profile or area label: such specs are still counted, so a
// spec that forgot its labels shows up instead of vanishing from the table.
const noLabel = "(none)"

// suiteScope names report entries made outside any profile (BeforeSuite, AfterSuite).
const suiteScope = "(suite)"

// notRunReason explains a skipped spec without a message: Ginkgo gives none when a spec was
// filtered out (--label-filter, --focus, --skip) or when the suite stopped before it.
const notRunReason = "not run: filtered out (--label-filter/--focus/--skip) or the suite stopped early"

// maxMessage bounds a failure or skip message in the summary; the JUnit report has the rest.
const maxMessage = 300

// maxSkippedNames bounds the spec names listed per skip reason.
const maxSkippedNames = 5

// Counts are the outcomes of a set of specs. Pending specs count as skipped.
type Counts struct {
	Passed  int `json:"passed"`
	Failed  int `json:"failed"`
	Skipped int `json:"skipped"`
}

func (c *Counts) add(o outcome) {
	switch o {
	case passed:
		c.Passed++
	case failed:
		c.Failed++
	case skipped:
		c.Skipped++
	}
}

func (c Counts) total() int { return c.Passed + c.Failed + c.Skipped }

type outcome int

const (
	ignored outcome = iota
	passed
	failed
	skipped
)

func outcomeOf(s types.SpecReport) outcome {
	switch {
	case s.State == types.SpecStatePassed:
		return passed
	case s.State.Is(types.SpecStateFailureStates):
		return failed
	case s.State.Is(types.SpecStateSkipped | types.SpecStatePending):
		return skipped
	}
	return ignored
}

type entry struct{ Name, Value string }

type profileResult struct {
	Name        string
	Areas       map[string]*Counts
	Total       Counts
	Phases      []Phase
	Perf        map[string]PerfMeasurement // by scope
	Diagnostics []string
}

type skipGroup struct {
	Profile, Reason string
	Specs           []string
}

type failureItem struct {
	Profile, Spec, State, Message, Location, Diagnostics string
	Also                                                 []string
}

// result is everything the summary and timings.json show, derived once from the report.
type result struct {
	RunID, K3sVersion, K3sImage, ImageSource string
	Succeeded                                bool
	Parallel                                 int // clusters run at once (ginkgo processes)
	SpecialFailureReasons                    []string
	Start                                    time.Time
	Total                                    time.Duration
	Profiles                                 []*profileResult
	Areas                                    []string
	Skips                                    []*skipGroup
	Failures                                 []failureItem
	SuiteFailures                            []failureItem
	Entries                                  map[string][]entry // by profile or suiteScope
	EntryScopes                              []string
}

func (r *Run) build(rep types.Report, now time.Time) *result {
	res := &result{
		RunID: r.RunID, K3sVersion: r.K3sVersion, K3sImage: r.K3sImage, ImageSource: r.ImageSource,
		Succeeded: rep.SuiteSucceeded, SpecialFailureReasons: rep.SpecialSuiteFailureReasons,
		Entries: map[string][]entry{},
	}
	res.Parallel = max(rep.SuiteConfig.ParallelTotal, 1)
	res.Start = rep.StartTime
	if res.Start.IsZero() {
		res.Start = r.Started
	}
	// ReportAfterSuite runs before Ginkgo sets the end time.
	end := rep.EndTime
	if end.Before(res.Start) || end.IsZero() {
		end = now
	}
	if !res.Start.IsZero() {
		res.Total = end.Sub(res.Start)
	}

	profiles := map[string]*profileResult{}
	prof := func(name string) *profileResult {
		if p, ok := profiles[name]; ok {
			return p
		}
		p := &profileResult{Name: name, Areas: map[string]*Counts{}, Perf: map[string]PerfMeasurement{}}
		profiles[name] = p
		return p
	}
	areas := map[string]bool{}
	phases := map[string][]Phase{}
	perf := map[string][]PerfMeasurement{}
	checks := map[string]time.Duration{}
	diagOfSpec := map[int]string{}
	skips := map[[2]string]*skipGroup{}

	for i, s := range rep.SpecReports {
		labels := s.Labels()
		pname := firstWithPrefix(labels, ProfileLabelPrefix)
		scope := pname
		if scope == "" {
			scope = suiteScope
			if s.LeafNodeType == types.NodeTypeIt {
				scope = noLabel
			}
		}
		for _, e := range s.ReportEntries {
			switch e.Name {
			case TimingsEntryName:
				var t Timings
				if decodeEntry(e, &t) == nil {
					name := orDefault(t.Profile, scope)
					prof(name)
					phases[name] = append(phases[name], t.Phases...)
				}
			case PerfEntryName:
				var p Perf
				if decodeEntry(e, &p) == nil {
					name := orDefault(p.Profile, scope)
					prof(name)
					perf[name] = append(perf[name], p.Measurement)
				}
			case DiagnosticsEntryName:
				var d Diagnostics
				if decodeEntry(e, &d) == nil && d.Dir != "" {
					name := orDefault(d.Profile, scope)
					p := prof(name)
					if !slices.Contains(p.Diagnostics, d.Dir) {
						p.Diagnostics = append(p.Diagnostics, d.Dir)
					}
					diagOfSpec[i] = d.Dir
				}
			default:
				if _, ok := res.Entries[scope]; !ok {
					res.EntryScopes = append(res.EntryScopes, scope)
				}
				res.Entries[scope] = append(res.Entries[scope], entry{e.Name, entryValue(e)})
			}
		}

		if s.LeafNodeType != types.NodeTypeIt {
			// BeforeSuite, AfterSuite, cleanup and reporting nodes: not checks of a promise,
			// but their failures fail the run and must be visible.
			if s.Failed() {
				res.SuiteFailures = append(res.SuiteFailures, failureOf(s, strings.TrimSpace(s.LeafNodeType.String()+" "+s.LeafNodeText), suiteScope))
			}
			continue
		}
		o := outcomeOf(s)
		if o == ignored {
			continue
		}
		name := orDefault(pname, noLabel)
		p := prof(name)
		p.Total.add(o)
		specAreas := allWithPrefix(labels, AreaLabelPrefix)
		if len(specAreas) == 0 {
			specAreas = []string{noLabel}
		}
		for _, a := range specAreas {
			areas[a] = true
			if p.Areas[a] == nil {
				p.Areas[a] = &Counts{}
			}
			p.Areas[a].add(o)
		}
		for _, ev := range s.SpecEvents {
			if ev.SpecEventType == types.SpecEventNodeEnd && ev.NodeType == types.NodeTypeIt {
				checks[name] += ev.Duration
			}
		}
		text := specText(s, name)
		switch o {
		case failed:
			f := failureOf(s, text, name)
			f.Diagnostics = diagOfSpec[i]
			res.Failures = append(res.Failures, f)
		case skipped:
			reason := firstLine(s.Failure.Message)
			if s.State == types.SpecStatePending {
				reason = "pending"
			} else if reason == "" {
				reason = notRunReason
			}
			k := [2]string{name, reason}
			g := skips[k]
			if g == nil {
				g = &skipGroup{Profile: name, Reason: reason}
				skips[k] = g
				res.Skips = append(res.Skips, g)
			}
			g.Specs = append(g.Specs, text)
		}
	}

	// In-process records override report entries phase by phase (see AddTimings).
	for name, ps := range r.phases {
		prof(name)
		phases[name] = append(phases[name], ps...)
	}
	for name, ms := range r.perf {
		prof(name)
		perf[name] = append(perf[name], ms...)
	}
	for name, p := range profiles {
		p.Phases = orderPhases(phases[name])
		if d := checks[name]; d > 0 && !hasPhase(p.Phases, "checks") {
			p.Phases = orderPhases(append(p.Phases, Phase{Name: "checks", Duration: d}))
		}
		for _, m := range perf[name] {
			p.Perf[orDefault(m.Scope, "unspecified")] = m
		}
		res.Profiles = append(res.Profiles, p)
	}
	sort.Slice(res.Profiles, func(i, j int) bool { return labelLess(res.Profiles[i].Name, res.Profiles[j].Name) })
	for a := range areas {
		res.Areas = append(res.Areas, a)
	}
	sort.Slice(res.Areas, func(i, j int) bool { return labelLess(res.Areas[i], res.Areas[j]) })
	sort.SliceStable(res.Skips, func(i, j int) bool { return labelLess(res.Skips[i].Profile, res.Skips[j].Profile) })
	sort.SliceStable(res.Failures, func(i, j int) bool { return labelLess(res.Failures[i].Profile, res.Failures[j].Profile) })
	// A failure whose own spec carries no bundle (a bundle collected at teardown lands on the
	// profile's last spec) points at the profile's first bundle.
	for i := range res.Failures {
		if res.Failures[i].Diagnostics == "" {
			if p := profiles[res.Failures[i].Profile]; p != nil && len(p.Diagnostics) > 0 {
				res.Failures[i].Diagnostics = p.Diagnostics[0]
			}
		}
	}
	return res
}

func failureOf(s types.SpecReport, text, profile string) failureItem {
	f := failureItem{Profile: profile, Spec: text, State: s.State.String(), Message: failureLine(s.Failure.Message)}
	if s.Failure.ForwardedPanic != "" && f.Message == "" {
		f.Message = firstLine(s.Failure.ForwardedPanic)
	}
	if loc := s.Failure.Location; loc.FileName != "" {
		f.Location = filepath.Base(loc.FileName) + ":" + strconv.Itoa(loc.LineNumber)
	}
	for _, a := range s.AdditionalFailures {
		f.Also = append(f.Also, a.State.String()+": "+failureLine(a.Failure.Message))
	}
	return f
}

// specText is the spec's full text without the profile container ("profile vxlan"), which
// the summary already shows as its own column.
func specText(s types.SpecReport, profile string) string {
	var parts []string
	for _, t := range s.ContainerHierarchyTexts {
		if t == "profile "+profile {
			continue
		}
		parts = append(parts, t)
	}
	return strings.Join(append(parts, s.LeafNodeText), " › ")
}

// decodeEntry reads an entry value back into out. In the process that made the entry the raw
// value is the original struct; in the aggregated report of a parallel run only its JSON
// survives. Going through JSON covers both.
func decodeEntry(e types.ReportEntry, out any) error {
	b := []byte(e.Value.AsJSON)
	if len(b) == 0 {
		var err error
		if b, err = json.Marshal(e.GetRawValue()); err != nil {
			return err
		}
	}
	return json.Unmarshal(b, out)
}

func entryValue(e types.ReportEntry) string {
	if s := e.StringRepresentation(); s != "" {
		return s
	}
	return e.Value.Representation
}

func orderPhases(ps []Phase) []Phase {
	idx := map[string]int{}
	var out []Phase
	for _, p := range ps {
		if i, ok := idx[p.Name]; ok {
			out[i] = p // the last record of a phase wins
			continue
		}
		idx[p.Name] = len(out)
		out = append(out, p)
	}
	rank := func(name string) int {
		if i := slices.Index(PhaseOrder, name); i >= 0 {
			return i
		}
		return len(PhaseOrder)
	}
	sort.SliceStable(out, func(i, j int) bool { return rank(out[i].Name) < rank(out[j].Name) })
	return out
}

func hasPhase(ps []Phase, name string) bool {
	return slices.ContainsFunc(ps, func(p Phase) bool { return p.Name == name })
}

func firstWithPrefix(labels []string, prefix string) string {
	for _, l := range labels {
		if v, ok := strings.CutPrefix(l, prefix); ok {
			return v
		}
	}
	return ""
}

func allWithPrefix(labels []string, prefix string) []string {
	var out []string
	for _, l := range labels {
		if v, ok := strings.CutPrefix(l, prefix); ok && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// labelLess sorts names alphabetically with the placeholders last.
func labelLess(a, b string) bool {
	pa, pb := strings.HasPrefix(a, "("), strings.HasPrefix(b, "(")
	if pa != pb {
		return pb
	}
	return a < b
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// firstLine is the first non-empty line of a message, shortened: Gomega puts the spec's own
// description of the expectation first.
func firstLine(s string) string {
	if lines := nonEmptyLines(s); len(lines) > 0 {
		return shorten(lines[0])
	}
	return ""
}

var (
	// asyncPreamble is the line an Eventually/Consistently failure starts with ("Timed out
	// after 60.000s."): alone it says nothing about what was expected.
	asyncPreamble = regexp.MustCompile(`^(Timed out|Context was cancelled|Failed)\b.* after [0-9.]+s\.$`)
	// polledFailure introduces the failure of an assertion inside the polled function.
	polledFailure = regexp.MustCompile(`^(The function passed to (?:Eventually|Consistently) failed at )(.*)( with:)$`)
	// probeVerdict starts the one-line verdict of framework/probe's matchers.
	probeVerdict = regexp.MustCompile(`^expected the probe to (succeed|run and fail); `)
)

// failureLine is a failure message in one line, shortened: the first line, and for an
// Eventually or Consistently failure the lines after Gomega's preamble up to the description
// of what was expected (the outer one, and the inner one when the polled function failed);
// then a probe matcher's verdict when one follows.
func failureLine(s string) string {
	lines := nonEmptyLines(s)
	if len(lines) == 0 {
		return ""
	}
	out, rest := []string{lines[0]}, lines[1:]
	if asyncPreamble.MatchString(lines[0]) {
		// The outer description, when the spec gave one.
		if len(rest) > 0 && !polledFailure.MatchString(rest[0]) {
			out, rest = append(out, rest[0]), rest[1:]
		}
		// When the polled function failed: Gomega's "failed at … with:" line, with the file
		// of the assertion but not its directory (the summary's locations are file:line
		// too), and the inner description.
		if len(rest) > 0 {
			if m := polledFailure.FindStringSubmatch(rest[0]); m != nil {
				out = append(out, m[1]+filepath.Base(m[2])+m[3])
				rest = rest[1:]
				if len(rest) > 0 {
					out, rest = append(out, rest[0]), rest[1:]
				}
			}
		}
	}
	// A probe matcher's verdict carries the probe's own error in one line: worth keeping,
	// unlike the multi-line dumps of Gomega's matchers.
	if len(rest) > 0 && probeVerdict.MatchString(rest[0]) {
		out = append(out, rest[0])
	}
	return shorten(strings.Join(out, " "))
}

func nonEmptyLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func shorten(s string) string {
	if r := []rune(s); len(r) > maxMessage {
		return string(r[:maxMessage]) + "…"
	}
	return s
}

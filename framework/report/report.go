// Package report writes what a run found into $ARTIFACTS: summary.md (a Markdown table of
// profile × area outcomes, skip reasons, failures, phase timings, performance numbers and
// report entries) and timings.json (the same numbers for machines; its perf section is also
// the baseline format of the next run).
//
// Everything the report needs travels inside the Ginkgo report: the suite attaches timings,
// performance measurements and diagnostics bundle paths as report entries (TimingsEntry,
// PerfEntry, DiagnosticsEntry). Ginkgo forwards report entries from every parallel process to
// the one ReportAfterSuite node, so the report is complete under `ginkgo -p` too, where an
// in-memory value set on another process would be lost. AddTimings and AddPerf remain for
// callers that run in the same process as Write.
package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/onsi/ginkgo/v2/types"
)

// Files written by Write.
const (
	SummaryFile = "summary.md"
	TimingsFile = "timings.json"
)

// Names of the report entries this package reads back from the Ginkgo report.
const (
	TimingsEntryName     = "k3snet timings"
	PerfEntryName        = "k3snet perf"
	DiagnosticsEntryName = "k3snet diagnostics"
)

// Label prefixes the suite puts on its containers and specs.
const (
	ProfileLabelPrefix = "profile:"
	AreaLabelPrefix    = "area:"
)

// Phase is the wall time of one phase of a profile's cluster life.
type Phase struct {
	Name     string        `json:"name"`
	Duration time.Duration `json:"duration_ns"`
}

// PhaseOrder is the order phases appear in when present; other phase names follow in the
// order they were first recorded.
var PhaseOrder = []string{"image-import", "create", "ready", "probes", "checks", "delete"}

// Timings is the value of a timings report entry.
type Timings struct {
	Profile string  `json:"profile"`
	Phases  []Phase `json:"phases"`
}

// String is what Ginkgo prints for the entry.
func (t Timings) String() string {
	parts := make([]string, 0, len(t.Phases))
	for _, p := range t.Phases {
		parts = append(parts, p.Name+"="+roundDuration(p.Duration))
	}
	return t.Profile + ": " + strings.Join(parts, " ")
}

// Perf is the value of a performance report entry.
type Perf struct {
	Profile     string          `json:"profile"`
	Measurement PerfMeasurement `json:"measurement"`
}

// String is what Ginkgo prints for the entry.
func (p Perf) String() string { return p.Profile + ": " + p.Measurement.String() }

// Diagnostics is the value of a diagnostics report entry: where a failure's bundle is.
type Diagnostics struct {
	Profile string `json:"profile"`
	Dir     string `json:"dir"`
}

// String is what Ginkgo prints for the entry, so the path shows up next to the failure.
func (d Diagnostics) String() string { return "diagnostics bundle of " + d.Profile + ": " + d.Dir }

// TimingsEntry returns the arguments of AddReportEntry for a profile's phase timings:
//
//	AddReportEntry(report.TimingsEntry(profile, phases))
func TimingsEntry(profile string, phases []Phase) (string, Timings, types.ReportEntryVisibility) {
	return TimingsEntryName, Timings{Profile: profile, Phases: append([]Phase(nil), phases...)}, types.ReportEntryVisibilityFailureOrVerbose
}

// PerfEntry returns the arguments of AddReportEntry for one performance measurement.
func PerfEntry(profile string, m PerfMeasurement) (string, Perf, types.ReportEntryVisibility) {
	return PerfEntryName, Perf{Profile: profile, Measurement: m}, types.ReportEntryVisibilityAlways
}

// DiagnosticsEntry returns the arguments of AddReportEntry naming a diagnostics bundle. It is
// always visible: whoever reads a failure needs the path.
func DiagnosticsEntry(profile, dir string) (string, Diagnostics, types.ReportEntryVisibility) {
	return DiagnosticsEntryName, Diagnostics{Profile: profile, Dir: dir}, types.ReportEntryVisibilityAlways
}

// Run describes one run of the suite and collects what Write reports besides the Ginkgo
// report itself. It is safe for concurrent use; do not copy it.
type Run struct {
	RunID       string
	K3sVersion  string
	K3sImage    string
	ImageSource string // "lab" or "official"
	// Started is used for the total duration when the Ginkgo report has no start time.
	Started time.Time

	mu      sync.Mutex
	phases  map[string][]Phase
	perf    map[string][]PerfMeasurement
	summary string
}

// AddTimings records phase timings of a profile. Phases recorded here override report
// entries of the same profile and phase name, so recording a phase both ways is harmless.
func (r *Run) AddTimings(profile string, phases []Phase) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.phases == nil {
		r.phases = map[string][]Phase{}
	}
	r.phases[profile] = append(r.phases[profile], phases...)
}

// AddPerf records a performance measurement of a profile; a later measurement of the same
// scope replaces an earlier one.
func (r *Run) AddPerf(profile string, m PerfMeasurement) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.perf == nil {
		r.perf = map[string][]PerfMeasurement{}
	}
	r.perf[profile] = append(r.perf[profile], m)
}

// Write renders summary.md and timings.json for rep into dir (created if missing). Call it
// from a ReportAfterSuite node, which receives the report of every parallel process.
func (r *Run) Write(dir string, rep types.Report) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := r.build(rep, time.Now())
	summary := renderSummary(res)
	js, err := json.MarshalIndent(res.timingsJSON(), "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", TimingsFile, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating the report directory: %w", err)
	}
	errs := []error{
		os.WriteFile(filepath.Join(dir, SummaryFile), []byte(summary), 0o644),
		os.WriteFile(filepath.Join(dir, TimingsFile), append(js, '\n'), 0o644),
	}
	r.summary = summary
	return errors.Join(errs...)
}

// Summary returns the Markdown of the last Write ("" before the first).
func (r *Run) Summary() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.summary
}

// AppendGitHubSummary appends the summary of the last Write to path, GitHub Actions' job
// summary file ($GITHUB_STEP_SUMMARY). An empty path (not running in Actions) does nothing.
func (r *Run) AppendGitHubSummary(path string) error {
	if path == "" {
		return nil
	}
	s := r.Summary()
	if s == "" {
		return errors.New("no summary to append: Write has not run")
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(s + "\n")
	return errors.Join(err, f.Close())
}

func roundDuration(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(time.Millisecond).String()
	default:
		return d.String()
	}
}

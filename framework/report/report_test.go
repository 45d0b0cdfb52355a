package report

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onsi/ginkgo/v2/types"
	"github.com/onsi/gomega"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// spec builds a SpecReport the way Ginkgo does for a spec of the suite: the profile
// container carries profile:/backend: labels, the area context its area: labels.
func spec(profile, area, leaf string, state types.SpecState, msg string, leafLabels ...string) types.SpecReport {
	s := types.SpecReport{
		ContainerHierarchyTexts:  []string{"profile " + profile, area},
		ContainerHierarchyLabels: [][]string{{"profile:" + profile, "backend:" + profile}, {"area:" + area}},
		LeafNodeType:             types.NodeTypeIt,
		LeafNodeText:             leaf,
		LeafNodeLabels:           leafLabels,
		State:                    state,
		Failure:                  types.Failure{Message: msg},
	}
	if msg != "" && state.Is(types.SpecStateFailureStates) {
		s.Failure.Location = types.CodeLocation{FileName: "/src/suites/network/" + area + "_test.go", LineNumber: 42}
	}
	return s
}

func itRan(s types.SpecReport, d time.Duration) types.SpecReport {
	s.SpecEvents = append(s.SpecEvents, types.SpecEvent{SpecEventType: types.SpecEventNodeEnd, NodeType: types.NodeTypeIt, Duration: d})
	return s
}

func withEntry(s types.SpecReport, name string, value any) types.SpecReport {
	s.ReportEntries = append(s.ReportEntries, types.ReportEntry{Name: name, Value: types.WrapEntryValue(value)})
	return s
}

// jsonEntry is an entry as the aggregated report of a parallel run carries it: JSON only.
func jsonEntry(s types.SpecReport, name string, value any) types.SpecReport {
	b, err := json.Marshal(value)
	if err != nil {
		panic(err)
	}
	var v types.ReportEntryValue
	wire, _ := json.Marshal(struct{ AsJSON, Representation string }{string(b), "parallel"})
	if err := json.Unmarshal(wire, &v); err != nil {
		panic(err)
	}
	s.ReportEntries = append(s.ReportEntries, types.ReportEntry{Name: name, Value: v})
	return s
}

func syntheticReport() types.Report {
	name, timings, _ := TimingsEntry("vxlan", []Phase{
		{"create", 20 * time.Second}, {"image-import", 5 * time.Second}, {"ready", 10 * time.Second},
		{"probes", 8 * time.Second}, {"delete", 3 * time.Second}, {"create+import", 26 * time.Second},
	})
	lastVXLAN := withEntry(spec("vxlan", "pod-network", "resolves names", types.SpecStatePassed, ""), name, timings)
	lastVXLAN = withEntry(lastVXLAN, "vxlan drop control", "failures asserted in 1.2s")
	dn, diagVal, _ := DiagnosticsEntry("host-gw", "/artifacts/host-gw")
	pn, perfVal, _ := PerfEntry("vxlan", PerfMeasurement{Backend: "vxlan", Scope: ScopeCrossNode, ThroughputBps: 9.4e9, RRP50us: 45, RRP99us: 120})

	policy := spec("vxlan", "policy", "blocks denied traffic", types.SpecStatePassed, "")
	policy.ContainerHierarchyLabels[1] = append(policy.ContainerHierarchyLabels[1], "area:pod-network")

	return types.Report{
		SuiteSucceeded: false,
		SuiteConfig:    types.SuiteConfig{ParallelTotal: 2},
		StartTime:      t0,
		EndTime:        t0.Add(10 * time.Minute),
		SpecReports: types.SpecReports{
			{LeafNodeType: types.NodeTypeBeforeSuite, State: types.SpecStatePassed},
			itRan(spec("vxlan", "pod-network", "delivers TCP between pods", types.SpecStatePassed, ""), 2*time.Second),
			itRan(spec("vxlan", "dataplane", "builds flannel.1", types.SpecStatePassed, ""), 3*time.Second),
			itRan(policy, 4*time.Second),
			withEntry(lastVXLAN, pn, perfVal),
			spec("none", "dataplane", "annotates every node", types.SpecStateSkipped, "flannel does not run with flannel-backend=none"),
			spec("none", "dataplane", "routes every podCIDR", types.SpecStateSkipped, "flannel does not run with flannel-backend=none"),
			spec("none", "pod-network", "registers nodes NotReady", types.SpecStatePassed, ""),
			spec("none", "policy", "filtered out", types.SpecStateSkipped, ""),
			withEntry(spec("host-gw", "dataplane", "routes via node IPs", types.SpecStateFailed,
				"route to 10.42.1.0/24 on server-0\nExpected\n    <bool>: false\nto be true"), dn, diagVal),
			spec("host-gw", "dataplane", "restores the route", types.SpecStateSkipped, "Spec skipped because an earlier spec in an ordered container failed"),
			jsonEntry(spec("host-gw", "pod-network", "delivers UDP", types.SpecStateTimedout, "A node timeout occurred"),
				TimingsEntryName, Timings{Profile: "host-gw", Phases: []Phase{{"create", 30 * time.Second}}}),
			{LeafNodeType: types.NodeTypeAfterSuite, LeafNodeText: "", State: types.SpecStateFailed,
				Failure: types.Failure{Message: "removing what run abc123 left behind\nmore"}},
		},
	}
}

func newRun() *Run {
	return &Run{RunID: "abc123", K3sVersion: "v1.31.1+k3s1", K3sImage: "rancher/k3s:v1.31.1-k3s1", ImageSource: "lab"}
}

func TestWriteSummaryTable(t *testing.T) {
	dir := t.TempDir()
	r := newRun()
	if err := r.Write(dir, syntheticReport()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, SummaryFile))
	if err != nil {
		t.Fatal(err)
	}
	md := string(b)
	for _, want := range []string{
		"# k3snet network conformance: FAILED",
		"| Run id | `abc123` |",
		"| k3s version | `v1.31.1+k3s1` |",
		"| Node image | `rancher/k3s:v1.31.1-k3s1` |",
		"| Image source | `lab` |",
		"| Duration | 10m0s |",
		"| Clusters at once | 2 |",
		// Areas sorted; the policy spec also counts under pod-network.
		"| profile | dataplane | pod-network | policy | total |",
		"| host-gw | **0/1/1** | **0/1/0** | – | **0/2/1** |",
		"| none | 0/0/2 | 1/0/0 | 0/0/1 | 1/0/3 |",
		"| vxlan | 1/0/0 | 3/0/0 | 1/0/0 | 4/0/0 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("summary lacks %q:\n%s", want, md)
		}
	}
	if strings.Index(md, "| host-gw |") > strings.Index(md, "| none |") {
		t.Errorf("profiles should be sorted:\n%s", md)
	}
}

func TestWriteSummarySkipsAndFailures(t *testing.T) {
	dir := t.TempDir()
	r := newRun()
	if err := r.Write(dir, syntheticReport()); err != nil {
		t.Fatal(err)
	}
	md := r.Summary()
	for _, want := range []string{
		"- **none**: `flannel does not run with flannel-backend=none` (2): dataplane › annotates every node; dataplane › routes every podCIDR",
		"- **none**: `" + notRunReason + "` (1): policy › filtered out",
		"- **host-gw**: `Spec skipped because an earlier spec in an ordered container failed` (1): dataplane › restores the route",
		// First line of the message only, with the location and the bundle.
		"- **host-gw** · dataplane › routes via node IPs: failed: `route to 10.42.1.0/24 on server-0` (dataplane_test.go:42)\n  - diagnostics: `/artifacts/host-gw`",
		// A failure without its own bundle points at its profile's.
		"- **host-gw** · pod-network › delivers UDP: timedout: `A node timeout occurred` (pod-network_test.go:42)\n  - diagnostics: `/artifacts/host-gw`",
		"### Suite-level failures\n\n- **(suite)** · AfterSuite: failed:",
		"`removing what run abc123 left behind`",
		"### vxlan\n\n- vxlan drop control: `failures asserted in 1.2s`",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("summary lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "Expected") {
		t.Errorf("only the first line of a failure message belongs in the summary:\n%s", md)
	}
	if strings.Contains(md, "- "+TimingsEntryName) || strings.Contains(md, "- "+PerfEntryName) {
		t.Errorf("the package's own entries must not be listed as report entries:\n%s", md)
	}
}

func TestWriteSummaryTimingsAndPerf(t *testing.T) {
	r := newRun()
	if err := r.Write(t.TempDir(), syntheticReport()); err != nil {
		t.Fatal(err)
	}
	md := r.Summary()
	for _, want := range []string{
		"| profile | image-import | create | ready | probes | checks | delete | create+import |",
		// checks derived from the It nodes' durations: 2s + 3s + 4s.
		"| vxlan | 5s | 20s | 10s | 8s | 9s | 3s | 26s |",
		"| host-gw | – | 30s | – | – | – | – | – |",
		"| vxlan | cross-node | vxlan | 9.40 Gbit/s | 45 µs | 120 µs |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("summary lacks %q:\n%s", want, md)
		}
	}
}

func TestWriteTimingsJSON(t *testing.T) {
	dir := t.TempDir()
	r := newRun()
	r.AddTimings("vxlan", []Phase{{"checks", 90 * time.Second}}) // overrides the derived value
	r.AddPerf("vxlan", PerfMeasurement{Backend: "vxlan", Scope: ScopeSameNode, ThroughputBps: 20e9})
	if err := r.Write(dir, syntheticReport()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, TimingsFile))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		RunID        string  `json:"run_id"`
		K3sVersion   string  `json:"k3s_version"`
		ImageSource  string  `json:"image_source"`
		TotalSeconds float64 `json:"total_seconds"`
		Profiles     map[string]struct {
			Phases      map[string]float64         `json:"phases"`
			Specs       Counts                     `json:"specs"`
			Perf        map[string]PerfMeasurement `json:"perf"`
			Diagnostics []string                   `json:"diagnostics"`
		} `json:"profiles"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if doc.RunID != "abc123" || doc.K3sVersion != "v1.31.1+k3s1" || doc.ImageSource != "lab" || doc.TotalSeconds != 600 {
		t.Errorf("run fields: %+v", doc)
	}
	vx := doc.Profiles["vxlan"]
	wantPhases := map[string]float64{"create": 20, "image-import": 5, "ready": 10, "probes": 8, "checks": 90, "delete": 3, "create+import": 26}
	if len(vx.Phases) != len(wantPhases) {
		t.Errorf("vxlan phases %v, want %v", vx.Phases, wantPhases)
	}
	for k, v := range wantPhases {
		if vx.Phases[k] != v {
			t.Errorf("vxlan phase %s = %v, want %v", k, vx.Phases[k], v)
		}
	}
	if vx.Specs != (Counts{Passed: 4}) {
		t.Errorf("vxlan specs %+v", vx.Specs)
	}
	if vx.Perf[ScopeCrossNode].ThroughputBps != 9.4e9 || vx.Perf[ScopeSameNode].ThroughputBps != 20e9 {
		t.Errorf("vxlan perf %+v", vx.Perf)
	}
	hg := doc.Profiles["host-gw"]
	if hg.Specs != (Counts{Failed: 2, Skipped: 1}) || hg.Phases["create"] != 30 || len(hg.Diagnostics) != 1 {
		t.Errorf("host-gw %+v", hg)
	}
	if doc.Profiles["none"].Specs != (Counts{Passed: 1, Skipped: 3}) {
		t.Errorf("none %+v", doc.Profiles["none"])
	}
	if _, ok := doc.Profiles[suiteScope]; ok {
		t.Errorf("suite-level nodes are not a profile: %v", doc.Profiles)
	}

	// timings.json is a baseline file.
	base, err := LoadBaseline(filepath.Join(dir, TimingsFile))
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := base.Lookup("vxlan", ScopeCrossNode); !ok || m.RRP99us != 120 {
		t.Errorf("baseline from timings.json: %+v %v", m, ok)
	}
}

func TestSpecWithoutLabels(t *testing.T) {
	rep := types.Report{SuiteSucceeded: true, StartTime: t0, EndTime: t0.Add(time.Second), SpecReports: types.SpecReports{
		{LeafNodeType: types.NodeTypeIt, LeafNodeText: "stray", State: types.SpecStatePassed},
		{LeafNodeType: types.NodeTypeIt, LeafNodeText: "later", State: types.SpecStatePending},
	}}
	r := newRun()
	if err := r.Write(t.TempDir(), rep); err != nil {
		t.Fatal(err)
	}
	md := r.Summary()
	for _, want := range []string{"PASSED", "| profile | (none) | total |", "| (none) | 1/0/1 | 1/0/1 |", "`pending` (1): later"} {
		if !strings.Contains(md, want) {
			t.Errorf("summary lacks %q:\n%s", want, md)
		}
	}
}

func TestMarkdownEscaping(t *testing.T) {
	rep := types.Report{StartTime: t0, EndTime: t0, SpecReports: types.SpecReports{
		spec("vxlan", "dns", "a|b", types.SpecStateFailed, "Expected <string>: `x` | y"),
	}}
	r := newRun()
	if err := r.Write(t.TempDir(), rep); err != nil {
		t.Fatal(err)
	}
	if want := "`` Expected <string>: `x` | y ``"; !strings.Contains(r.Summary(), want) {
		t.Errorf("message should be a double-backtick code span:\n%s", r.Summary())
	}
}

func TestAppendGitHubSummary(t *testing.T) {
	r := newRun()
	if err := r.AppendGitHubSummary(""); err != nil {
		t.Errorf("no path must be a no-op: %v", err)
	}
	path := filepath.Join(t.TempDir(), "step_summary")
	if err := r.AppendGitHubSummary(path); err == nil {
		t.Error("appending before Write should fail")
	}
	if err := os.WriteFile(path, []byte("earlier step\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.Write(t.TempDir(), syntheticReport()); err != nil {
		t.Fatal(err)
	}
	if err := r.AppendGitHubSummary(path); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(b), "earlier step\n# k3snet network conformance") {
		t.Errorf("summary not appended:\n%s", b)
	}
}

func TestConcurrentUse(t *testing.T) {
	r := newRun()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			r.AddTimings("vxlan", []Phase{{"ready", time.Duration(i) * time.Second}})
		}()
		go func() {
			defer wg.Done()
			r.AddPerf("vxlan", PerfMeasurement{Scope: ScopeCrossNode, ThroughputBps: float64(i)})
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = r.Write(t.TempDir(), syntheticReport())
	}()
	wg.Wait()
	if err := r.Write(t.TempDir(), syntheticReport()); err != nil {
		t.Fatal(err)
	}
}

func TestEntryHelpersPrint(t *testing.T) {
	_, tv, vis := TimingsEntry("vxlan", []Phase{{"create", 1500 * time.Millisecond}, {"ready", 250 * time.Millisecond}})
	if tv.String() != "vxlan: create=1.5s ready=250ms" || vis != types.ReportEntryVisibilityFailureOrVerbose {
		t.Errorf("timings entry %q %v", tv, vis)
	}
	_, dv, vis := DiagnosticsEntry("vxlan", "/a/vxlan")
	if dv.String() != "diagnostics bundle of vxlan: /a/vxlan" || vis != types.ReportEntryVisibilityAlways {
		t.Errorf("diagnostics entry %q %v", dv, vis)
	}
}

// gomegaFailure returns the message Gomega itself produces for the assertion run by assert.
func gomegaFailure(t *testing.T, assert func(g gomega.Gomega)) string {
	t.Helper()
	var msg string
	assert(gomega.NewGomega(func(m string, _ ...int) { msg = m }))
	if msg == "" {
		t.Fatal("the assertion did not fail")
	}
	return msg
}

func TestFailureLineKeepsWhatAPollExpected(t *testing.T) {
	timeout := 30 * time.Millisecond
	for _, c := range []struct {
		name   string
		assert func(g gomega.Gomega)
		want   []string // in this order
		absent string
	}{
		{
			name: "plain assertion",
			assert: func(g gomega.Gomega) {
				g.Expect(1450).To(gomega.Equal(1460), "MTU of flannel.1 on agent-0")
			},
			want: []string{"MTU of flannel.1 on agent-0"}, absent: "Expected",
		},
		{
			name: "Eventually whose matcher never matched",
			assert: func(g gomega.Gomega) {
				g.Eventually(func() string { return "netprobe-x" }).WithTimeout(timeout).
					Should(gomega.HavePrefix("other-"), "traefik should route host %s", "probe.k3snet.test")
			},
			want: []string{"Timed out after", "traefik should route host probe.k3snet.test"}, absent: "Expected",
		},
		{
			name: "Eventually whose polled function failed",
			assert: func(g gomega.Gomega) {
				g.Eventually(func(g gomega.Gomega) string {
					g.Expect(404).To(gomega.Equal(200), "HTTP for host %s", "probe.k3snet.test")
					return ""
				}).WithTimeout(timeout).Should(gomega.HavePrefix("netprobe-"), "traefik should route host %s", "probe.k3snet.test")
			},
			want: []string{"Timed out after", "traefik should route host", "The function passed to Eventually failed at report_test.go:", "HTTP for host probe.k3snet.test"}, absent: "Expected",
		},
		{
			name: "probe verdict after the description",
			assert: func(g gomega.Gomega) {
				g.Expect(false).To(verdictMatcher{}, "udp between the two probe pods on agent-1")
			},
			want: []string{"udp between the two probe pods on agent-1", "it reported: no UDP reply within 2s"}, absent: "whole result",
		},
		{
			name: "probe verdict inside a poll",
			assert: func(g gomega.Gomega) {
				g.Eventually(func(g gomega.Gomega) {
					g.Expect(false).To(verdictMatcher{}, "HTTP for host %s", "probe.k3snet.test")
				}).WithTimeout(timeout).Should(gomega.Succeed(), "traefik should route host %s", "probe.k3snet.test")
			},
			want: []string{"Timed out after", "traefik should route host", "failed at report_test.go:", "HTTP for host probe.k3snet.test", "it reported: no UDP reply"}, absent: "whole result",
		},
		{
			name: "verdict of an expected failure",
			assert: func(g gomega.Gomega) {
				g.Expect(true).To(gomega.BeFalse(), "tcp must fail while agent-0 drops VXLAN\nexpected the probe to run and fail; it succeeded\nwhole result: {OK:true}")
			},
			want: []string{"tcp must fail while agent-0 drops VXLAN", "expected the probe to run and fail; it succeeded"}, absent: "whole result",
		},
		{
			name: "Consistently that saw something",
			assert: func(g gomega.Gomega) {
				g.Consistently(func() []string { return []string{"pod svclb-x"} }).WithTimeout(timeout).
					Should(gomega.BeEmpty(), "no svclb pod may appear")
			},
			want: []string{"after", "no svclb pod may appear"}, absent: "Expected",
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			msg := gomegaFailure(t, c.assert)
			got := failureLine(msg)
			rest := got
			for _, w := range c.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("failureLine lacks %q (in order) in %q\nfrom Gomega's message:\n%s", w, got, msg)
				}
				rest = rest[i+len(w):]
			}
			if strings.Contains(got, c.absent) {
				t.Errorf("failureLine should stop before the matcher's details, got %q", got)
			}
			if strings.Contains(got, "\n") {
				t.Errorf("failureLine is one line, got %q", got)
			}
		})
	}
}

// verdictMatcher fails with a message shaped like framework/probe's matchers (the report
// package does not import them: it reads messages, whoever wrote them).
type verdictMatcher struct{}

func (verdictMatcher) Match(actual any) (bool, error) { return actual == true, nil }
func (verdictMatcher) FailureMessage(any) string {
	return "expected the probe to succeed; it reported: no UDP reply within 2s (4 datagrams sent)\nwhole result: {OK:false}"
}
func (verdictMatcher) NegatedFailureMessage(any) string { return "" }

func TestFailureLineShortens(t *testing.T) {
	got := failureLine("Timed out after 1.000s.\n" + strings.Repeat("x", 2*maxMessage))
	if r := []rune(got); len(r) != maxMessage+1 || !strings.HasSuffix(got, "…") {
		t.Errorf("want %d runes ending in …, got %d: %q", maxMessage+1, len(r), got)
	}
}

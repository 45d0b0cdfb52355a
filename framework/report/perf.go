package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/k3snet/e2e/fixtures/netprobe/api"
)

// Scopes of a performance measurement: both probe pods on one node, or on two nodes (the
// only scope where the flannel backend's encapsulation is on the path).
const (
	ScopeSameNode  = "same-node"
	ScopeCrossNode = "cross-node"
)

// DefaultTolerance is the relative change Compare accepts when given none.
const DefaultTolerance = 0.10

// PerfMeasurement is one throughput and request-response latency measurement of a profile.
// Zero values mean "not measured" and are never compared.
type PerfMeasurement struct {
	Backend string `json:"backend"`
	Scope   string `json:"scope"`
	// ThroughputBps is in bits per second, as netprobe's bits_per_second.
	ThroughputBps float64 `json:"throughput_bps,omitempty"`
	RRP50us       float64 `json:"rr_p50_us,omitempty"`
	RRP99us       float64 `json:"rr_p99_us,omitempty"`
}

// MeasurementFrom combines a netprobe stream result and an rr result (either may be the
// zero value) into one measurement.
func MeasurementFrom(backend, scope string, stream, rr api.PerfResult) PerfMeasurement {
	m := PerfMeasurement{Backend: backend, Scope: scope}
	if stream.OK {
		m.ThroughputBps = stream.BitsPerSecond
	}
	if rr.OK {
		m.RRP50us, m.RRP99us = rr.P50Us, rr.P99Us
	}
	return m
}

func (m PerfMeasurement) String() string {
	var parts []string
	if m.ThroughputBps > 0 {
		parts = append(parts, formatBps(m.ThroughputBps))
	}
	if m.RRP50us > 0 || m.RRP99us > 0 {
		parts = append(parts, fmt.Sprintf("rr p50 %s p99 %s", formatUs(m.RRP50us), formatUs(m.RRP99us)))
	}
	if len(parts) == 0 {
		parts = append(parts, "nothing measured")
	}
	return strings.TrimSpace(m.Scope+" "+m.Backend) + ": " + strings.Join(parts, ", ")
}

// Baseline holds reference measurements per profile and scope. Its file format is a subset
// of timings.json, so the timings.json of a good run is the baseline of the next one.
type Baseline struct {
	Profiles map[string]BaselineProfile `json:"profiles"`
}

// BaselineProfile is the perf section of one profile in timings.json.
type BaselineProfile struct {
	Perf map[string]PerfMeasurement `json:"perf,omitempty"` // by scope
}

// ErrNoBaseline is returned (wrapped) by Compare when the baseline has no measurement for
// the profile and scope: a first run, or a new profile, is not a regression.
var ErrNoBaseline = errors.New("no baseline measurement")

// LoadBaseline reads a baseline file (a timings.json of an earlier run will do).
func LoadBaseline(path string) (Baseline, error) {
	var b Baseline
	data, err := os.ReadFile(path)
	if err != nil {
		return b, err
	}
	if err := json.Unmarshal(data, &b); err != nil {
		return b, fmt.Errorf("baseline %s: %w", path, err)
	}
	return b, nil
}

// WriteBaseline writes b in the baseline format.
func WriteBaseline(path string, b Baseline) error {
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// Lookup returns the baseline measurement of a profile and scope.
func (b Baseline) Lookup(profile, scope string) (PerfMeasurement, bool) {
	m, ok := b.Profiles[profile].Perf[scope]
	return m, ok
}

// Set records m as the baseline of a profile and its scope.
func (b *Baseline) Set(profile string, m PerfMeasurement) {
	if b.Profiles == nil {
		b.Profiles = map[string]BaselineProfile{}
	}
	p := b.Profiles[profile]
	if p.Perf == nil {
		p.Perf = map[string]PerfMeasurement{}
	}
	p.Perf[m.Scope] = m
	b.Profiles[profile] = p
}

// Compare fails when m is worse than the baseline of its profile and scope by more than
// tolerance (a fraction; <= 0 means DefaultTolerance): throughput lower, or a latency
// percentile higher. Values missing on either side are not compared. A baseline measured
// with another flannel backend is refused rather than compared.
func (b Baseline) Compare(profile string, m PerfMeasurement, tolerance float64) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	base, ok := b.Lookup(profile, m.Scope)
	if !ok {
		return fmt.Errorf("%w for profile %s, scope %s", ErrNoBaseline, profile, m.Scope)
	}
	if base.Backend != "" && m.Backend != "" && base.Backend != m.Backend {
		return fmt.Errorf("baseline of profile %s (%s) was measured with backend %s, this run used %s", profile, m.Scope, base.Backend, m.Backend)
	}
	var regressions []string
	if base.ThroughputBps > 0 && m.ThroughputBps > 0 && m.ThroughputBps < base.ThroughputBps*(1-tolerance) {
		regressions = append(regressions, fmt.Sprintf("throughput %s < baseline %s (%+.1f%%)",
			formatBps(m.ThroughputBps), formatBps(base.ThroughputBps), change(m.ThroughputBps, base.ThroughputBps)))
	}
	for _, l := range []struct {
		name     string
		got, ref float64
	}{{"rr p50", m.RRP50us, base.RRP50us}, {"rr p99", m.RRP99us, base.RRP99us}} {
		if l.ref > 0 && l.got > 0 && l.got > l.ref*(1+tolerance) {
			regressions = append(regressions, fmt.Sprintf("%s latency %s > baseline %s (%+.1f%%)",
				l.name, formatUs(l.got), formatUs(l.ref), change(l.got, l.ref)))
		}
	}
	if len(regressions) > 0 {
		return fmt.Errorf("performance of profile %s (%s, %s) regressed beyond %.0f%%: %s",
			profile, m.Scope, m.Backend, tolerance*100, strings.Join(regressions, "; "))
	}
	return nil
}

func change(got, ref float64) float64 { return (got - ref) / ref * 100 }

func formatBps(v float64) string {
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%.2f Gbit/s", v/1e9)
	case v >= 1e6:
		return fmt.Sprintf("%.1f Mbit/s", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1f kbit/s", v/1e3)
	}
	return fmt.Sprintf("%.0f bit/s", v)
}

func formatUs(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.2f ms", v/1000)
	}
	return fmt.Sprintf("%.0f µs", v)
}

package report

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/k3snet/e2e/fixtures/netprobe/api"
)

func testBaseline() Baseline {
	var b Baseline
	b.Set("vxlan", PerfMeasurement{Backend: "vxlan", Scope: ScopeCrossNode, ThroughputBps: 10e9, RRP50us: 100, RRP99us: 200})
	return b
}

func TestCompare(t *testing.T) {
	b := testBaseline()
	for _, tc := range []struct {
		name      string
		m         PerfMeasurement
		tolerance float64
		wantErr   []string // substrings; nil = pass
	}{
		{"equal", PerfMeasurement{Backend: "vxlan", Scope: ScopeCrossNode, ThroughputBps: 10e9, RRP50us: 100, RRP99us: 200}, 0, nil},
		{"within default tolerance", PerfMeasurement{Backend: "vxlan", Scope: ScopeCrossNode, ThroughputBps: 9.1e9, RRP50us: 109, RRP99us: 219}, 0, nil},
		{"better", PerfMeasurement{Backend: "vxlan", Scope: ScopeCrossNode, ThroughputBps: 20e9, RRP50us: 50, RRP99us: 60}, 0, nil},
		{"throughput drop", PerfMeasurement{Backend: "vxlan", Scope: ScopeCrossNode, ThroughputBps: 8.5e9}, 0,
			[]string{"throughput 8.50 Gbit/s < baseline 10.00 Gbit/s (-15.0%)", "beyond 10%"}},
		{"p99 rise", PerfMeasurement{Backend: "vxlan", Scope: ScopeCrossNode, RRP50us: 100, RRP99us: 250}, 0,
			[]string{"rr p99 latency 250 µs > baseline 200 µs (+25.0%)"}},
		{"p50 rise tolerated by a wider tolerance", PerfMeasurement{Backend: "vxlan", Scope: ScopeCrossNode, RRP50us: 125}, 0.3, nil},
		{"p50 rise beyond a wider tolerance", PerfMeasurement{Backend: "vxlan", Scope: ScopeCrossNode, RRP50us: 140}, 0.3,
			[]string{"rr p50 latency", "beyond 30%"}},
		{"other backend", PerfMeasurement{Backend: "host-gw", Scope: ScopeCrossNode, ThroughputBps: 10e9}, 0,
			[]string{"measured with backend vxlan"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := b.Compare("vxlan", tc.m, tc.tolerance)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("unexpected regression: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("regression not detected")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestCompareWithoutBaseline(t *testing.T) {
	b := testBaseline()
	for _, c := range []struct{ profile, scope string }{{"host-gw", ScopeCrossNode}, {"vxlan", ScopeSameNode}} {
		err := b.Compare(c.profile, PerfMeasurement{Scope: c.scope, ThroughputBps: 1}, 0)
		if !errors.Is(err, ErrNoBaseline) {
			t.Errorf("%s/%s: want ErrNoBaseline, got %v", c.profile, c.scope, err)
		}
	}
}

func TestBaselineRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "baseline.json")
	if err := WriteBaseline(path, testBaseline()); err != nil {
		t.Fatal(err)
	}
	b, err := LoadBaseline(path)
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := b.Lookup("vxlan", ScopeCrossNode); !ok || m != testBaseline().Profiles["vxlan"].Perf[ScopeCrossNode] {
		t.Errorf("round trip: %+v", m)
	}
	if _, err := LoadBaseline(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("a missing baseline file must be an error")
	}
}

func TestMeasurementFrom(t *testing.T) {
	m := MeasurementFrom("vxlan", ScopeSameNode,
		api.PerfResult{OK: true, Mode: api.PerfStream, BitsPerSecond: 3e9},
		api.PerfResult{OK: false, Mode: api.PerfRR, P50Us: 10, Error: "refused"})
	if m.ThroughputBps != 3e9 || m.RRP50us != 0 || m.Scope != ScopeSameNode {
		t.Errorf("%+v", m)
	}
	if got := m.String(); got != "same-node vxlan: 3.00 Gbit/s" {
		t.Errorf("String() = %q", got)
	}
}

package upgrade

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"

	"github.com/k3snet/e2e/fixtures/netprobe/api"
	"github.com/k3snet/e2e/framework/probe"
)

// upgradeReport is $ARTIFACTS/upgrade.json.
type upgradeReport struct {
	RunID    string        `json:"run_id"`
	Cluster  string        `json:"cluster"`
	Profile  string        `json:"profile"`
	Backend  string        `json:"backend"`
	From     sideReport    `json:"from"`
	To       sideReport    `json:"to"`
	Warnings []string      `json:"warnings"`
	Started  *time.Time    `json:"started,omitempty"` // first node replacement
	Nodes    []nodeUpgrade `json:"nodes"`
	// Summary: pod_traffic is each monitor to the monitor pods on the other nodes, by
	// per-pod DNS name (resolved again every interval, a failed lookup keeps the last
	// address); service is each monitor to the netprobe Service's ClusterIP (TCP echo on
	// 8081, any netprobe pod may answer); dns is each monitor's lookups of
	// kubernetes.default.svc.<domain>.
	Summary probe.MonitorSummary `json:"summary"`
	// MonitorReadings counts the statistics snapshots the summary is made of.
	MonitorReadings int      `json:"monitor_readings"`
	MonitorErrors   []string `json:"monitor_errors,omitempty"`
	IntervalMs      float64  `json:"interval_ms"`
	Notes           []string `json:"notes"`
	Complete        bool     `json:"complete"` // every node was upgraded
}

type sideReport struct {
	Image       string `json:"image"`
	ImageID     string `json:"image_id"`
	Version     string `json:"version"`
	VersionFrom string `json:"version_from"`
}

func reportSide(s side) sideReport {
	return sideReport{Image: s.Image, ImageID: s.ImageID, Version: s.Version.String(), VersionFrom: s.VersionFrom}
}

var reportNotes = []string{
	"An outage is a run of consecutive failed attempts (one every interval per target, 1s timeout), from the start of the first failed attempt to the start of the next successful one.",
	"A replaced node's containers are new, so its pods restart: traffic to and from the pods on the node being replaced is interrupted by design of this mechanism (a k3s binary upgrade on a host keeps pods running); 'during' names the node whose replacement (plus 30s of convergence) an outage overlaps.",
	"longest_outside is collateral damage: an interruption between nodes that were both untouched at the time.",
	"Pod traffic targets are re-resolved by DNS every interval; CoreDNS caches answers (TTL 5s), so up to 5s of an interruption to a restarted pod can be its new address not being known yet.",
	"A monitor is blind while its own node is replaced; it is read just before, and its next instance starts a new record.",
	"k3d drains a server node when its container stops (kubectl drain --ignore-daemonsets --force in k3d's entrypoint) and the new k3s uncordons it: Deployment pods on a server (CoreDNS among them) move to other nodes during its replacement. Agents are not drained. The probes and monitors are DaemonSet pods, which a drain leaves in place.",
}

// report reads the monitors a last time, sums up and writes the report, once; later calls
// return the same report. It works on whatever the run got to, so a failed upgrade still
// leaves its measurements behind.
func (e *upgradeEnv) report(ctx context.Context) *upgradeReport {
	if e.reported || e.cluster == nil {
		return e.last
	}
	e.reported = true
	r := &upgradeReport{
		RunID: settings.RunID, Cluster: e.cluster.Name, Profile: e.plan.Profile.Name, Backend: e.plan.Profile.Network.FlannelBackend,
		From: reportSide(e.plan.From), To: reportSide(e.plan.To), Warnings: e.plan.Warnings,
		Nodes: e.nodes, IntervalMs: 200, Notes: reportNotes, Complete: len(e.nodes) == e.plan.Exp.Nodes && allOK(e.nodes),
	}
	if r.Warnings == nil {
		r.Warnings = []string{}
	}
	if r.Nodes == nil {
		r.Nodes = []nodeUpgrade{}
	}
	if !e.started.IsZero() {
		r.Started = &e.started
	}
	for _, m := range e.monitors {
		var err error
		for try := 0; try < 3; try++ {
			var st api.MonitorStats
			if st, err = probe.ReadMonitor(ctx, e.kube, probeNamespace, m); err == nil {
				e.records = append(e.records, probe.MonitorRecord{Node: m.Node, Stats: st})
				r.IntervalMs = st.IntervalMs
				break
			}
		}
		if err != nil {
			r.MonitorErrors = append(r.MonitorErrors, err.Error())
		}
	}
	r.MonitorReadings = len(e.records)
	r.Summary = probe.Summarize(e.monitors, e.records, e.windows, convergenceSlack)
	e.last = r

	text := r.text()
	GinkgoWriter.Println(text)
	AddReportEntry("upgrade "+r.Profile, text)
	if err := os.MkdirAll(settings.Artifacts, 0o755); err == nil {
		path := filepath.Join(settings.Artifacts, "upgrade.json")
		b, _ := json.MarshalIndent(r, "", "  ")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			GinkgoWriter.Printf("writing %s: %v\n", path, err)
		} else {
			GinkgoWriter.Printf("wrote %s\n", path)
		}
	}
	return r
}

func allOK(nodes []nodeUpgrade) bool {
	for _, n := range nodes {
		if n.Error != "" {
			return false
		}
	}
	return true
}

// text is the human summary: what a reader of the JUnit report or the log needs first.
func (r *upgradeReport) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "upgrade of profile %s (flannel %s): %s (k3s %s) → %s (k3s %s)\n",
		r.Profile, r.Backend, r.From.Image, r.From.Version, r.To.Image, r.To.Version)
	for _, n := range r.Nodes {
		status := ""
		if n.Error != "" {
			status = " FAILED: " + n.Error
		}
		fmt.Fprintf(&b, "  %-6s %s: %.1fs (container replaced in %.1fs, then Ready with its pods in %.1fs)%s\n",
			n.Role, n.Node, n.TotalMs/1000, n.ReplaceMs/1000, n.ReadyMs/1000, status)
	}
	s := r.Summary
	fmt.Fprintf(&b, "  longest interruption of pod traffic: %s\n", describe(s.PodTraffic.Longest))
	fmt.Fprintf(&b, "  longest between nodes not being replaced: %s\n", describe(s.PodTraffic.LongestOutside))
	fmt.Fprintf(&b, "  pod traffic: %.2f%% of %d attempts answered\n", s.PodTraffic.Percent, s.PodTraffic.Attempts)
	fmt.Fprintf(&b, "  Service ClusterIP: %.2f%% of %d attempts answered, longest run of failures %s\n",
		s.Service.Percent, s.Service.Attempts, describe(s.Service.Longest))
	fmt.Fprintf(&b, "  DNS: %.2f%% of %d lookups answered, longest outage %s\n", s.DNS.Percent, s.DNS.Attempts, describe(s.DNS.Longest))
	if len(r.MonitorErrors) > 0 {
		fmt.Fprintf(&b, "  monitors not read at the end: %s\n", strings.Join(r.MonitorErrors, "; "))
	}
	if !r.Complete {
		fmt.Fprintf(&b, "  INCOMPLETE: %d of the cluster's nodes were upgraded\n", len(r.Nodes))
	}
	return strings.TrimRight(b.String(), "\n")
}

func describe(in *probe.Interruption) string {
	if in == nil {
		return "none"
	}
	s := fmt.Sprintf("%.1fs (%s → %s from %s", in.Ms/1000, in.Source, in.Target, in.Start.Local().Format("15:04:05.000"))
	if in.During != "" {
		s += ", while " + in.During + " was replaced"
	}
	if in.Open {
		s += ", still going on when read"
	}
	if in.Error != "" {
		s += ": " + in.Error
	}
	return s + ")"
}

// maxInterruption is UPGRADE_MAX_INTERRUPTION: a bound on the longest interruption of pod
// traffic that fails the run when exceeded (unset: the interruption is only reported).
func maxInterruption() time.Duration {
	d, err := time.ParseDuration(os.Getenv("UPGRADE_MAX_INTERRUPTION"))
	if err != nil {
		return 0
	}
	return d
}

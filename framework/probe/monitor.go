package probe

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/k3snet/e2e/fixtures/manifests"
	"github.com/k3snet/e2e/fixtures/netprobe/api"
	"github.com/k3snet/e2e/framework/kube"
)

// Traffic monitors (fixtures/manifests/monitor.yaml): one pod per node that watches the
// pods on every other node, the netprobe Service and cluster DNS without a pause while the
// suite does something disruptive, and tells afterwards how long each of them was out.
const (
	MonitorService   = "netprobe-monitor" // headless; the pods' DNS subdomain
	MonitorContainer = "monitor"
	MonitorStatsPort = 8090
	MonitorEchoPort  = 8081
)

// Monitor is the monitor of one node: a DaemonSet of its own, so that its pod has a DNS name
// of its own and stays on the node through drains and restarts.
type Monitor struct {
	Node string
	Name string // the DaemonSet; its pod carries the label MonitorLabel=Name
	// Peer is how the other monitors address this one: its per-pod DNS name and echo port.
	Peer string
}

// MonitorLabel tells the monitor pods apart.
const MonitorLabel = "k3snet.io/monitor"

// MonitorOptions configure DeployMonitors.
type MonitorOptions struct {
	Image         string
	Nodes         []string      // one monitor per node
	ClusterDomain string        // the cluster's DNS domain
	ServiceIP     string        // ClusterIP of the netprobe Service
	Interval      time.Duration // between attempts; 200ms when zero
}

// DeployMonitors renders and applies the monitors into namespace ns (where the probe runs).
// It does not wait: see WaitMonitorsWatching.
func DeployMonitors(ctx context.Context, kc *kube.Client, ns string, o MonitorOptions) ([]Monitor, error) {
	if o.Interval == 0 {
		o.Interval = 200 * time.Millisecond
	}
	type entry struct {
		Name, Node, Hostname string
		Peers                []string
	}
	var mons []Monitor
	var entries []entry
	for i, n := range o.Nodes {
		host := "mon-" + strconv.Itoa(i)
		mons = append(mons, Monitor{
			Node: n, Name: MonitorService + "-" + strconv.Itoa(i),
			Peer: net.JoinHostPort(host+"."+MonitorService+"."+ns+".svc."+o.ClusterDomain, strconv.Itoa(MonitorEchoPort)),
		})
		entries = append(entries, entry{Name: mons[i].Name, Node: n, Hostname: host})
	}
	for i := range entries {
		for j, m := range mons {
			if i != j {
				entries[i].Peers = append(entries[i].Peers, m.Peer)
			}
		}
	}
	m, err := manifests.Render("monitor.yaml", map[string]any{
		"Image":         o.Image,
		"Interval":      o.Interval.String(),
		"DNSName":       "kubernetes.default.svc." + o.ClusterDomain,
		"ServiceTarget": net.JoinHostPort(o.ServiceIP, strconv.Itoa(TCPPort)),
		"Monitors":      entries,
	})
	if err != nil {
		return nil, err
	}
	if err := kc.Apply(ctx, m, ns); err != nil {
		return nil, fmt.Errorf("deploying the monitors into %s: %w", ns, err)
	}
	return mons, nil
}

// MonitorPod returns the current pod of a monitor.
func MonitorPod(ctx context.Context, kc *kube.Client, ns string, m Monitor) (corev1.Pod, error) {
	pods, err := kc.Pods(ctx, ns, MonitorLabel+"="+m.Name)
	if err != nil {
		return corev1.Pod{}, err
	}
	for _, p := range pods {
		if p.DeletionTimestamp == nil && p.Spec.NodeName == m.Node {
			return p, nil
		}
	}
	return corev1.Pod{}, fmt.Errorf("no pod of monitor %s on node %s", m.Name, m.Node)
}

// ReadMonitor fetches a monitor's statistics through pod exec (netprobe dial against its
// stats port on loopback, so nothing crosses the network being measured).
func ReadMonitor(ctx context.Context, kc *kube.Client, ns string, m Monitor) (api.MonitorStats, error) {
	var st api.MonitorStats
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	pod, err := MonitorPod(ctx, kc, ns, m)
	if err != nil {
		return st, err
	}
	stdout, stderr, err := kc.Exec(ctx, ns, pod.Name, MonitorContainer, "/netprobe", "dial", "--proto", api.ProtoHTTP,
		"--target", net.JoinHostPort("127.0.0.1", strconv.Itoa(MonitorStatsPort)), "--path", "/stats", "--timeout", "5s")
	if err != nil {
		return st, fmt.Errorf("reading monitor %s/%s on %s: %v (stderr: %s)", ns, pod.Name, m.Node, err, strings.TrimSpace(stderr))
	}
	var r api.DialResult
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		return st, fmt.Errorf("reading monitor %s/%s on %s: %v (stdout %q)", ns, pod.Name, m.Node, err, stdout)
	}
	if !r.OK {
		return st, fmt.Errorf("reading monitor %s/%s on %s: %s", ns, pod.Name, m.Node, r.Error)
	}
	if err := json.Unmarshal([]byte(r.Reply), &st); err != nil {
		return st, fmt.Errorf("monitor %s/%s on %s served no statistics: %v", ns, pod.Name, m.Node, err)
	}
	return st, nil
}

// MonitorPodsReady says which monitor pod is not Ready with every container started at or
// after since (zero: any start), or nil. After a node restart this tells the new pod
// instance from the stale status the old one left.
func MonitorPodsReady(ctx context.Context, kc *kube.Client, ns string, mons []Monitor, since time.Time) error {
	for _, m := range mons {
		pod, err := MonitorPod(ctx, kc, ns, m)
		if err != nil {
			return err
		}
		if err := PodFresh(&pod, since); err != nil {
			return err
		}
	}
	return nil
}

// PodFresh says why a pod is not Ready with all its containers started at or after since
// (container start times have a resolution of one second), or nil.
func PodFresh(pod *corev1.Pod, since time.Time) error {
	ready := false
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			ready = true
		}
	}
	if !ready {
		return fmt.Errorf("pod %s on %s is not Ready (phase %s)", pod.Name, pod.Spec.NodeName, pod.Status.Phase)
	}
	floor := metav1.NewTime(since.Truncate(time.Second))
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.State.Running == nil {
			return fmt.Errorf("container %s of pod %s on %s is not running", cs.Name, pod.Name, pod.Spec.NodeName)
		}
		if !since.IsZero() && cs.State.Running.StartedAt.Before(&floor) {
			return fmt.Errorf("container %s of pod %s on %s still reports its start of %s, before %s",
				cs.Name, pod.Name, pod.Spec.NodeName, cs.State.Running.StartedAt.UTC().Format(time.RFC3339), floor.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

// MonitorRecord is one statistics snapshot of one monitor instance. A monitor restarts with
// its node, so a node that was replaced has a record per instance (read before the
// replacement, and at the end).
type MonitorRecord struct {
	Node  string
	Stats api.MonitorStats
}

// Window is the time a node was being worked on (replaced, until Ready again).
type Window struct {
	Node       string
	Start, End time.Time
}

// Interruption is one outage seen by one monitor.
type Interruption struct {
	Source   string    `json:"source"` // node of the monitor that saw it
	Target   string    `json:"target"` // peer node, "service" or "dns"
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Ms       float64   `json:"ms"`
	Failures int       `json:"failures,omitempty"`
	// Open: still going on when the statistics were read (End is the reading).
	Open  bool   `json:"open,omitempty"`
	Error string `json:"error,omitempty"`
	// During names the node whose window the outage overlaps: for pod traffic the source's
	// or the target's own node, for the Service and DNS any node; "" when none.
	During string `json:"during,omitempty"`
}

// Availability sums up one kind of monitored traffic over every monitor record.
type Availability struct {
	Attempts int `json:"attempts"`
	Failures int `json:"failures"`
	// Percent of the attempts that succeeded (100 with no attempts).
	Percent float64 `json:"percent"`
	// Longest is the longest interruption (nil: none); LongestOutside the longest that
	// overlaps no window of the nodes involved: collateral damage.
	Longest        *Interruption  `json:"longest,omitempty"`
	LongestOutside *Interruption  `json:"longest_outside,omitempty"`
	Interruptions  []Interruption `json:"interruptions"`
	// Unanswered lists "source → target" for targets a monitor instance never reached.
	Unanswered []string `json:"unanswered,omitempty"`
}

// LongestMs is the longest interruption in milliseconds (0 when none).
func (a Availability) LongestMs() float64 {
	if a.Longest == nil {
		return 0
	}
	return a.Longest.Ms
}

// MonitorSummary splits what the monitors saw into pod-to-pod traffic (each monitor to the
// monitor pods on the other nodes), traffic to the netprobe Service, and DNS lookups.
type MonitorSummary struct {
	PodTraffic Availability `json:"pod_traffic"`
	Service    Availability `json:"service"`
	DNS        Availability `json:"dns"`
}

// Summarize merges monitor records (the same instance read twice counts once, its latest
// reading) and attributes each outage to the windows it overlaps, extended by slack for the
// convergence that follows a node's return.
func Summarize(mons []Monitor, records []MonitorRecord, windows []Window, slack time.Duration) MonitorSummary {
	nodeOfPeer := map[string]string{}
	for _, m := range mons {
		nodeOfPeer[m.Peer] = m.Node
	}
	// One record per monitor instance: its hostname and start time identify it.
	latest := map[string]MonitorRecord{}
	for _, r := range records {
		key := r.Node + "|" + r.Stats.Hostname + "|" + r.Stats.Started
		if old, ok := latest[key]; !ok || parseTime(r.Stats.Now).After(parseTime(old.Stats.Now)) {
			latest[key] = r
		}
	}
	keys := make([]string, 0, len(latest))
	for k := range latest {
		keys = append(keys, k)
	}
	sort.Strings(keys)

	var s MonitorSummary
	for _, k := range keys {
		r := latest[k]
		for _, t := range r.Stats.Targets {
			if peer, ok := nodeOfPeer[t.Target]; ok && strings.HasSuffix(t.Kind, "-dns") {
				s.PodTraffic.add(r, t, peer, windows, slack, r.Node, peer)
			} else {
				s.Service.add(r, t, "service", windows, slack)
			}
		}
		if r.Stats.DNS != nil {
			s.DNS.add(r, *r.Stats.DNS, "dns", windows, slack)
		}
	}
	for _, a := range []*Availability{&s.PodTraffic, &s.Service, &s.DNS} {
		a.finish()
	}
	return s
}

// add folds one target record in; only windows of onlyNodes count (none given: any node).
func (a *Availability) add(r MonitorRecord, t api.MonitorTarget, target string, windows []Window, slack time.Duration, onlyNodes ...string) {
	a.Attempts += t.Attempts
	a.Failures += t.Failures
	if t.WatchingSince == "" {
		a.Unanswered = append(a.Unanswered, fmt.Sprintf("%s → %s (monitor started %s: %s)", r.Node, target, r.Stats.Started, t.LastError))
	}
	outages := append([]api.Outage(nil), t.Outages...)
	if t.CurrentOutageStart != "" {
		outages = append(outages, api.Outage{Start: t.CurrentOutageStart, End: r.Stats.Now, Ms: t.CurrentOutageMs, Error: t.LastError})
	}
	for i, o := range outages {
		in := Interruption{
			Source: r.Node, Target: target, Start: parseTime(o.Start), End: parseTime(o.End), Ms: o.Ms,
			Failures: o.Failures, Open: t.CurrentOutageStart != "" && i == len(outages)-1, Error: o.Error,
		}
		in.During = overlapping(in, windows, slack, onlyNodes)
		a.Interruptions = append(a.Interruptions, in)
	}
}

// overlapping names the node whose window (extended by slack) the interruption overlaps; when
// several do, the one whose work began last before the interruption did, which is the likely
// cause (the previous node's slack may still be running).
func overlapping(in Interruption, windows []Window, slack time.Duration, onlyNodes []string) string {
	best := -1
	for i, w := range windows {
		if len(onlyNodes) > 0 && !contains(onlyNodes, w.Node) {
			continue
		}
		if in.Start.After(w.End.Add(slack)) || in.End.Before(w.Start) {
			continue
		}
		switch {
		case best < 0:
			best = i
		case !w.Start.After(in.Start) && (windows[best].Start.After(in.Start) || w.Start.After(windows[best].Start)):
			best = i
		}
	}
	if best < 0 {
		return ""
	}
	return windows[best].Node
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (a *Availability) finish() {
	sort.SliceStable(a.Interruptions, func(i, j int) bool { return a.Interruptions[i].Start.Before(a.Interruptions[j].Start) })
	if a.Interruptions == nil {
		a.Interruptions = []Interruption{}
	}
	for i := range a.Interruptions {
		in := &a.Interruptions[i]
		if a.Longest == nil || in.Ms > a.Longest.Ms {
			a.Longest = in
		}
		if in.During == "" && (a.LongestOutside == nil || in.Ms > a.LongestOutside.Ms) {
			a.LongestOutside = in
		}
	}
	// Copies, so that the pointers do not alias the slice the caller may change.
	if a.Longest != nil {
		l := *a.Longest
		a.Longest = &l
	}
	if a.LongestOutside != nil {
		l := *a.LongestOutside
		a.LongestOutside = &l
	}
	a.Percent = 100
	if a.Attempts > 0 {
		a.Percent = float64(a.Attempts-a.Failures) * 100 / float64(a.Attempts)
	}
}

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

package probe

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/k3snet/e2e/fixtures/manifests"
	"github.com/k3snet/e2e/fixtures/netprobe/api"
)

var t0 = time.Date(2024, 10, 15, 12, 0, 0, 0, time.UTC)

func at(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }
func st(sec float64) string    { return at(sec).Format(time.RFC3339Nano) }

func TestSummarize(t *testing.T) {
	mons := []Monitor{
		{Node: "server-0", Name: "netprobe-monitor-0", Peer: "mon-0.netprobe-monitor.ns.svc.cluster.local:8081"},
		{Node: "agent-0", Name: "netprobe-monitor-1", Peer: "mon-1.netprobe-monitor.ns.svc.cluster.local:8081"},
	}
	windows := []Window{{Node: "server-0", Start: at(100), End: at(130)}, {Node: "agent-0", Start: at(200), End: at(220)}}
	peer := func(i int) string { return mons[i].Peer }

	// agent-0's first instance sees server-0's pod away during server-0's window, the
	// Service flicker once outside any window, and DNS down during server-0's window.
	first := api.MonitorStats{
		Hostname: "mon-1", Started: st(0), Now: st(190),
		Targets: []api.MonitorTarget{
			{Target: "10.43.5.5:8081", Kind: "tcp", WatchingSince: st(1), Attempts: 900, Failures: 3,
				Outages: []api.Outage{{Start: st(50), End: st(50.6), Ms: 600, Failures: 3}}},
			{Target: peer(0), Kind: "tcp-dns", WatchingSince: st(1), Attempts: 900, Failures: 100,
				Outages: []api.Outage{{Start: st(101), End: st(125), Ms: 24000, Failures: 100, Error: "refused"}}},
		},
		DNS: &api.MonitorTarget{Target: "kubernetes.default.svc.cluster.local", Kind: "dns", WatchingSince: st(1), Attempts: 900, Failures: 90,
			Outages: []api.Outage{{Start: st(102), End: st(120), Ms: 18000, Failures: 90}}},
	}
	// An earlier reading of the same instance must not count twice.
	earlier := first
	earlier.Now = st(60)
	earlier.Targets = []api.MonitorTarget{{Target: "10.43.5.5:8081", Kind: "tcp", WatchingSince: st(1), Attempts: 300}}
	// agent-0's second instance (after its own replacement) never reached server-0's pod.
	second := api.MonitorStats{
		Hostname: "mon-1", Started: st(215), Now: st(300),
		Targets: []api.MonitorTarget{{Target: peer(0), Kind: "tcp-dns", Pending: 400, LastError: "timeout"}},
	}
	// server-0's monitor, read at the end, still sees agent-0's pod away, well after the window.
	server := api.MonitorStats{
		Hostname: "mon-0", Started: st(110), Now: st(300),
		Targets: []api.MonitorTarget{{Target: peer(1), Kind: "tcp-dns", WatchingSince: st(111), Attempts: 900, Failures: 20,
			CurrentOutageMs: 4000, CurrentOutageStart: st(296), LastError: "no route to host"}},
	}
	s := Summarize(mons, []MonitorRecord{
		{Node: "agent-0", Stats: earlier}, {Node: "agent-0", Stats: first}, {Node: "agent-0", Stats: second}, {Node: "server-0", Stats: server},
	}, windows, 30*time.Second)

	pt := s.PodTraffic
	if pt.Attempts != 1800 || pt.Failures != 120 {
		t.Errorf("pod traffic attempts/failures %d/%d, want 1800/120", pt.Attempts, pt.Failures)
	}
	if len(pt.Interruptions) != 2 {
		t.Fatalf("pod interruptions %+v, want 2", pt.Interruptions)
	}
	if in := pt.Interruptions[0]; in.Source != "agent-0" || in.Target != "server-0" || in.During != "server-0" || in.Ms != 24000 || in.Error != "refused" {
		t.Errorf("first interruption %+v", in)
	}
	if in := pt.Interruptions[1]; !in.Open || in.During != "" || in.Ms != 4000 || !in.End.Equal(at(300)) {
		t.Errorf("open interruption %+v: want open, outside every window, 4000ms", in)
	}
	if pt.LongestMs() != 24000 || pt.LongestOutside == nil || pt.LongestOutside.Ms != 4000 {
		t.Errorf("longest %v, outside %+v", pt.LongestMs(), pt.LongestOutside)
	}
	if len(pt.Unanswered) != 1 || !strings.HasPrefix(pt.Unanswered[0], "agent-0 → server-0") {
		t.Errorf("unanswered %q", pt.Unanswered)
	}

	if sv := s.Service; sv.Attempts != 900 || sv.LongestMs() != 600 || sv.LongestOutside == nil || sv.Interruptions[0].Target != "service" {
		t.Errorf("service %+v", sv)
	}
	if d := s.DNS; d.Attempts != 900 || d.Failures != 90 || d.Percent != 90 || d.LongestMs() != 18000 || d.Interruptions[0].During != "server-0" || d.LongestOutside != nil {
		t.Errorf("dns %+v", d)
	}
}

func TestOverlappingPrefersTheLatestStartedWindow(t *testing.T) {
	windows := []Window{{Node: "server-0", Start: at(100), End: at(150)}, {Node: "agent-0", Start: at(151), End: at(180)}}
	cases := []struct {
		start, end float64
		want       string
	}{
		{110, 120, "server-0"},
		{152, 170, "agent-0"},  // in server-0's slack too, but agent-0's work began last
		{149, 160, "server-0"}, // began before agent-0's work did
		{90, 101, "server-0"},
		{250, 260, ""},
	}
	for _, tc := range cases {
		in := Interruption{Start: at(tc.start), End: at(tc.end)}
		if got := overlapping(in, windows, 30*time.Second, nil); got != tc.want {
			t.Errorf("[%v, %v]: during %q, want %q", tc.start, tc.end, got, tc.want)
		}
	}
}

func TestSummarizeNothing(t *testing.T) {
	s := Summarize(nil, nil, nil, 0)
	if s.DNS.Percent != 100 || s.PodTraffic.Longest != nil || s.PodTraffic.Interruptions == nil {
		t.Errorf("empty summary %+v", s)
	}
}

func TestPodFresh(t *testing.T) {
	since := at(100.4)
	pod := func(ready bool, started ...float64) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: corev1.PodSpec{NodeName: "n"}}
		status := corev1.ConditionFalse
		if ready {
			status = corev1.ConditionTrue
		}
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}
		for _, s := range started {
			// The API server keeps whole seconds.
			p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{
				Name: "c", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(at(s).Truncate(time.Second))}}})
		}
		return p
	}
	if err := PodFresh(pod(true, 100.2, 130), since); err != nil {
		t.Errorf("started in the same second as since: %v", err)
	}
	if err := PodFresh(pod(true, 130, 20), since); err == nil || !strings.Contains(err.Error(), "still reports") {
		t.Errorf("a container of the old instance: %v", err)
	}
	if err := PodFresh(pod(false, 130), since); err == nil || !strings.Contains(err.Error(), "not Ready") {
		t.Errorf("not ready: %v", err)
	}
	if err := PodFresh(pod(true, 20), time.Time{}); err != nil {
		t.Errorf("zero since accepts any start: %v", err)
	}
}

func TestMonitorManifestRenders(t *testing.T) {
	m, err := manifests.Render("monitor.yaml", map[string]any{
		"Image": "k3snet.local/netprobe:dev", "Interval": "200ms", "DNSName": "kubernetes.default.svc.cluster.local",
		"ServiceTarget": "10.43.7.7:8081",
		"Monitors": []map[string]any{
			{"Name": "netprobe-monitor-0", "Node": "a", "Hostname": "mon-0", "Peers": []string{"mon-1.x:8081", "mon-2.x:8081"}},
			{"Name": "netprobe-monitor-1", "Node": "b", "Hostname": "mon-1", "Peers": []string{"mon-0.x:8081"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	y := string(m)
	for _, want := range []string{`nodeSelector: {kubernetes.io/hostname: "a"}`, "hostname: mon-1", `"--target-dns", "mon-2.x:8081"]`, `"--target", "10.43.7.7:8081"`, "publishNotReadyAddresses: true"} {
		if !strings.Contains(y, want) {
			t.Errorf("rendered manifest lacks %q:\n%s", want, y)
		}
	}
	if n := strings.Count(y, "\nkind: DaemonSet\n"); n != 2 {
		t.Errorf("%d DaemonSets rendered, want 2", n)
	}
	docs := strings.Split(y, "\n---\n")
	var ds appsv1.DaemonSet
	if err := yaml.UnmarshalStrict([]byte(docs[1]), &ds); err != nil {
		t.Fatalf("first DaemonSet: %v\n%s", err, docs[1])
	}
	pod := ds.Spec.Template
	if ds.Spec.Selector.MatchLabels[MonitorLabel] != "netprobe-monitor-0" || pod.Labels[MonitorLabel] != "netprobe-monitor-0" {
		t.Errorf("selector %v, pod labels %v: want %s=netprobe-monitor-0 in both", ds.Spec.Selector.MatchLabels, pod.Labels, MonitorLabel)
	}
	want := []string{"monitor", "--listen", ":8090", "--interval", "200ms", "--timeout", "1s", "--dns-name", "kubernetes.default.svc.cluster.local",
		"--target", "10.43.7.7:8081", "--target-dns", "mon-1.x:8081", "--target-dns", "mon-2.x:8081"}
	if got := pod.Spec.Containers[1].Args; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("monitor args %q, want %q", got, want)
	}
	if pod.Spec.Subdomain != MonitorService || pod.Spec.Containers[1].Name != MonitorContainer {
		t.Errorf("subdomain %q container %q", pod.Spec.Subdomain, pod.Spec.Containers[1].Name)
	}
}

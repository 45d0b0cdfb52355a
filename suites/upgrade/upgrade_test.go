package upgrade

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"time"

	dockerclient "github.com/docker/docker/client"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"

	"github.com/k3snet/e2e/fixtures/netprobe/api"
	"github.com/k3snet/e2e/framework/cluster"
	"github.com/k3snet/e2e/framework/config"
	"github.com/k3snet/e2e/framework/kube"
	"github.com/k3snet/e2e/framework/probe"
	"github.com/k3snet/e2e/framework/profile"
)

const (
	probeNamespace = "k3snet-probe"
	// podsPerNode: netprobe, netprobe-peer, netprobe-host and the monitor.
	podsPerNode = 4
	// convergenceSlack: an outage that starts this long after a node came back is still
	// put down to that node (flannel and kube-proxy on the others catching up).
	convergenceSlack = 30 * time.Second
)

// upgradeEnv is what the specs of the upgrade share.
type upgradeEnv struct {
	plan     *plan
	cluster  *cluster.Cluster
	kube     *kube.Client
	probe    *probe.Probe
	monitors []probe.Monitor

	records  []probe.MonitorRecord // monitor readings, one per instance at least
	windows  []probe.Window        // when each node was being replaced
	nodes    []nodeUpgrade
	started  time.Time
	failed   bool
	reported bool
	last     *upgradeReport
	timings  []cluster.Timing
}

// nodeUpgrade is the record of one node's replacement.
type nodeUpgrade struct {
	Node      string    `json:"node"`
	Role      string    `json:"role"`
	Start     time.Time `json:"start"`
	ReplaceMs float64   `json:"replace_ms"` // old container stopped, new one up (k3d's wait)
	ReadyMs   float64   `json:"ready_ms"`   // from then on until the node and its pods were Ready
	TotalMs   float64   `json:"total_ms"`
	// MonitorRead: the node's monitor was read before its replacement (otherwise what it saw
	// of the earlier nodes' upgrades is lost with it).
	MonitorRead bool   `json:"monitor_read"`
	Error       string `json:"error,omitempty"`
}

func describeUpgrade(pl *plan) {
	labels := []string{"area:upgrade"}
	title := "pre-upgrade validation"
	if pl != nil {
		labels = append(labels, "profile:"+pl.Profile.Name, "backend:"+pl.Profile.Network.FlannelBackend)
		title = fmt.Sprintf("upgrade of profile %s from %s to %s", pl.Profile.Name, pl.From.Image, pl.To.Image)
	}
	Describe(title, Ordered, Label(labels...), func() {
		e := &upgradeEnv{plan: pl}
		BeforeAll(func(ctx SpecContext) { e.setUp(ctx) }, NodeTimeout(15*time.Minute))
		AfterEach(func() {
			if CurrentSpecReport().Failed() {
				e.failed = true
			}
		})

		It("runs FROM on every node before the upgrade", func(ctx SpecContext) {
			e.expectNodesOn(ctx, e.plan.From)
		})
		It("passes the pod-network checks on FROM", func(ctx SpecContext) {
			for _, proto := range []string{protoICMP, protoTCP, protoUDP} {
				e.checkPairs(ctx, proto, "before the upgrade")
			}
			e.checkService(ctx, "before the upgrade")
			e.checkDNS(ctx, "before the upgrade")
		})

		It("upgrades the servers first, then the agents, one node at a time, each back Ready with its pods", func(ctx SpecContext) {
			e.started = time.Now()
			for _, n := range upgradeOrder(e.cluster.Nodes) {
				e.upgradeNode(ctx, n)
			}
			By("waiting for every monitor to reach every peer, the Service and DNS again")
			Eventually(ctx, e.monitorsHealthy).WithTimeout(2*time.Minute).Should(Succeed(),
				"after the last node, every monitor should reach the pods on every other node, the netprobe Service and DNS")
		}, NodeTimeout(40*time.Minute))

		It("runs TO on every node", func(ctx SpecContext) {
			e.expectNodesOn(ctx, e.plan.To)
		})
		DescribeTable("delivers traffic between pods on every ordered pair of nodes on TO",
			func(ctx SpecContext, proto string) { e.checkPairs(ctx, proto, "after the upgrade") },
			Entry("ICMP", protoICMP), Entry("TCP", protoTCP), Entry("UDP", protoUDP),
		)
		It("reaches the ClusterIP Service from a pod on every node on TO", func(ctx SpecContext) {
			e.checkService(ctx, "after the upgrade")
		})
		It("resolves kubernetes.default from a pod on every node on TO", func(ctx SpecContext) {
			e.checkDNS(ctx, "after the upgrade")
		})

		It("reports the interruption of pod traffic, Service and DNS during the upgrade", func(ctx SpecContext) {
			r := e.report(ctx)
			Expect(r.Summary.PodTraffic.Unanswered).To(BeEmpty(), "every monitor instance should have reached the pods on every other node")
			Expect(r.Summary.Service.Unanswered).To(BeEmpty(), "every monitor instance should have reached the netprobe Service")
			Expect(r.Summary.DNS.Unanswered).To(BeEmpty(), "every monitor instance should have resolved %s", dnsName(e.plan.Exp))
			if limit := maxInterruption(); limit > 0 {
				Expect(r.Summary.PodTraffic.LongestMs()).To(BeNumerically("<=", float64(limit.Milliseconds())),
					"UPGRADE_MAX_INTERRUPTION=%s bounds the longest interruption of pod traffic (%s)", limit, describe(r.Summary.PodTraffic.Longest))
			}
		})
	})
}

// setUp boots the cluster at FROM with per-node state volumes, deploys the probes and the
// monitors, and waits until every monitor sees every target: the baseline.
func (e *upgradeEnv) setUp(ctx context.Context) {
	GinkgoHelper()
	p, from := e.plan.Profile, e.plan.From
	By(fmt.Sprintf("creating cluster %s at %s: %d server(s), %d agent(s), flannel %s, state kept in volumes",
		cluster.Name(p.Name, settings.RunID), from, p.Servers, p.AgentCount(), p.Network.FlannelBackend))
	start := time.Now()
	c, err := cluster.Create(ctx, p, cluster.Options{
		RunID: settings.RunID, Image: from.Image, ImportImages: []string{settings.NetprobeImage},
		Log: GinkgoWriter, PersistentState: true,
	})
	Expect(err).NotTo(HaveOccurred(), "creating the cluster of profile %s at %s", p.Name, from)
	e.cluster = c
	e.timings = append(e.timings, c.Timings...)
	e.phase("create+import", start)
	DeferCleanup(e.tearDown, NodeTimeout(3*time.Minute))

	e.kube, err = kube.New(c.Kubeconfig)
	Expect(err).NotTo(HaveOccurred())
	start = time.Now()
	By("waiting for every node to be Ready")
	Expect(e.kube.WaitNodesReady(ctx, e.plan.Exp.Nodes, 4*time.Minute)).To(Succeed())
	e.phase("ready", start)

	start = time.Now()
	By("deploying the probes into namespace " + probeNamespace)
	Expect(e.kube.CreateNamespace(ctx, probeNamespace, map[string]string{"app.kubernetes.io/part-of": "k3snet-e2e"})).To(Succeed())
	e.probe, err = probe.Deploy(ctx, e.kube, probeNamespace, settings.NetprobeImage)
	Expect(err).NotTo(HaveOccurred())
	Expect(e.probe.WaitReady(ctx, 3*time.Minute, probe.PodDS, probe.PeerDS, probe.HostDS)).To(Succeed(), "the probe DaemonSets should be ready on every node")
	e.phase("probes", start)

	start = time.Now()
	By("starting a traffic monitor on every node")
	svc := &corev1.Service{}
	Expect(e.kube.Resources().Get(ctx, probe.Service, probeNamespace, svc)).To(Succeed())
	var nodes []string
	for _, n := range e.cluster.Nodes {
		nodes = append(nodes, n.Name)
	}
	e.monitors, err = probe.DeployMonitors(ctx, e.kube, probeNamespace, probe.MonitorOptions{
		Image: settings.NetprobeImage, Nodes: nodes, ClusterDomain: e.plan.Exp.ClusterDomain, ServiceIP: svc.Spec.ClusterIP,
	})
	Expect(err).NotTo(HaveOccurred())
	// The report is written whatever happens next, while the cluster still exists.
	DeferCleanup(func(ctx SpecContext) { e.report(ctx) }, NodeTimeout(2*time.Minute))
	Eventually(ctx, func(ctx context.Context) error {
		return probe.MonitorPodsReady(ctx, e.kube, probeNamespace, e.monitors, time.Time{})
	}).WithTimeout(3*time.Minute).Should(Succeed(), "a monitor pod should be Ready on every node")
	Eventually(ctx, e.monitorsHealthy).WithTimeout(2*time.Minute).Should(Succeed(),
		"before the upgrade, every monitor should reach the pods on every other node, the netprobe Service and DNS")
	e.phase("monitors", start)
}

func (e *upgradeEnv) phase(name string, start time.Time) {
	d := time.Since(start)
	e.timings = append(e.timings, cluster.Timing{Phase: name, Duration: d})
	GinkgoWriter.Printf("[%s] %s took %s\n", e.plan.Profile.Name, name, d.Round(100*time.Millisecond))
}

// monitorsHealthy reads every monitor and says which one does not see all its targets now.
func (e *upgradeEnv) monitorsHealthy(ctx context.Context) error {
	for _, m := range e.monitors {
		st, err := probe.ReadMonitor(ctx, e.kube, probeNamespace, m)
		if err != nil {
			return err
		}
		if !st.OK {
			return fmt.Errorf("monitor on %s: %s", m.Node, st.Error)
		}
	}
	return nil
}

// upgradeOrder is k3s's documented order: servers first, then agents, each one at a time.
func upgradeOrder(nodes []cluster.Node) []cluster.Node {
	out := append([]cluster.Node(nil), nodes...)
	sort.SliceStable(out, func(i, j int) bool {
		if (out[i].Role == "server") != (out[j].Role == "server") {
			return out[i].Role == "server"
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// upgradeNode replaces one node's container with one running TO (same name, address,
// volumes and k3s arguments) and waits until the node and every pod on it are back.
func (e *upgradeEnv) upgradeNode(ctx context.Context, n cluster.Node) {
	GinkgoHelper()
	By(fmt.Sprintf("upgrading %s %s to %s", n.Role, n.Name, e.plan.To.Image))
	rec := nodeUpgrade{Node: n.Name, Role: n.Role}
	// The node's monitor dies with its node: keep what it saw so far.
	if m, ok := e.monitorOn(n.Name); ok {
		for try := 0; try < 3 && !rec.MonitorRead; try++ {
			st, err := probe.ReadMonitor(ctx, e.kube, probeNamespace, m)
			if err != nil {
				GinkgoWriter.Printf("could not read the monitor on %s before its replacement: %v\n", n.Name, err)
				continue
			}
			e.records = append(e.records, probe.MonitorRecord{Node: n.Name, Stats: st})
			rec.MonitorRead = true
		}
	}
	rec.Start = time.Now()
	var replaced time.Time
	defer func() {
		end := time.Now()
		if replaced.IsZero() {
			replaced = end
		}
		rec.ReplaceMs, rec.ReadyMs, rec.TotalMs = msSince(rec.Start, replaced), msSince(replaced, end), msSince(rec.Start, end)
		e.windows = append(e.windows, probe.Window{Node: n.Name, Start: rec.Start, End: end})
		e.nodes = append(e.nodes, rec)
		GinkgoWriter.Printf("%s %s: replaced in %.1fs, Ready with its pods %.1fs later (%.1fs in all)\n",
			n.Role, n.Name, rec.ReplaceMs/1000, rec.ReadyMs/1000, rec.TotalMs/1000)
	}()

	err := e.cluster.ReplaceNode(ctx, n.Name, e.plan.To.Image)
	if err != nil {
		rec.Error = err.Error()
	}
	Expect(err).NotTo(HaveOccurred(), "replacing %s %s with a container of %s", n.Role, n.Name, e.plan.To.Image)
	replaced = time.Now()

	Eventually(ctx, func(ctx context.Context) error { return e.nodeBack(ctx, n.Name, rec.Start) }).
		WithTimeout(6*time.Minute).Should(Succeed(),
		"%s %s should be Ready again with its %d probe and monitor pods restarted and Ready", n.Role, n.Name, podsPerNode)
	Expect(e.probe.WaitReady(ctx, 3*time.Minute, probe.PodDS, probe.PeerDS, probe.HostDS)).To(Succeed(),
		"the probe DaemonSets should be ready again after %s came back", n.Name)
}

func (e *upgradeEnv) monitorOn(node string) (probe.Monitor, bool) {
	for _, m := range e.monitors {
		if m.Node == node {
			return m, true
		}
	}
	return probe.Monitor{}, false
}

// nodeBack says why node is not back yet: it must be Ready, and each of its probe and
// monitor pods Ready with containers started after since — the pods of the new container,
// not the last status the old one reported.
func (e *upgradeEnv) nodeBack(ctx context.Context, node string, since time.Time) error {
	var n corev1.Node
	if err := e.kube.Resources().Get(ctx, node, "", &n); err != nil {
		return err
	}
	if c := kube.NodeReady(&n); c == nil || c.Status != corev1.ConditionTrue {
		return fmt.Errorf("node %s is not Ready", node)
	}
	pods, err := e.kube.Pods(ctx, probeNamespace, "app.kubernetes.io/part-of=k3snet-e2e")
	if err != nil {
		return err
	}
	count := 0
	for i := range pods {
		if pods[i].Spec.NodeName != node || pods[i].DeletionTimestamp != nil {
			continue
		}
		count++
		if err := probe.PodFresh(&pods[i], since); err != nil {
			return err
		}
	}
	if count != podsPerNode {
		return fmt.Errorf("%d probe and monitor pods on %s, want %d", count, node, podsPerNode)
	}
	return nil
}

// expectNodesOn checks that every node runs s: its container was made from s's image and its
// kubelet reports s's version.
func (e *upgradeEnv) expectNodesOn(ctx context.Context, s side) {
	GinkgoHelper()
	nodes, err := e.kube.Nodes(ctx)
	Expect(err).NotTo(HaveOccurred())
	Expect(nodes).To(HaveLen(e.plan.Exp.Nodes), "profile %s has %d nodes", e.plan.Profile.Name, e.plan.Exp.Nodes)
	dc, err := dockerclient.NewClientWithOpts(dockerclient.FromEnv, dockerclient.WithAPIVersionNegotiation())
	Expect(err).NotTo(HaveOccurred())
	defer dc.Close()
	for _, n := range nodes {
		kv := n.Status.NodeInfo.KubeletVersion
		Expect(versionMatches(kv, s.Version)).To(BeTrue(), "node %s should run k3s %s (%s), its kubelet reports %s", n.Name, s.Version, s.VersionFrom, kv)
		cn, ok := e.cluster.Node(n.Name)
		Expect(ok).To(BeTrue(), "node %s should be a container of cluster %s", n.Name, e.cluster.Name)
		ci, err := dc.ContainerInspect(ctx, cn.Container)
		Expect(err).NotTo(HaveOccurred(), "inspecting the container of node %s", n.Name)
		Expect(ci.Image).To(Equal(s.ImageID), "node %s should run in a container of %s image %s (%s), not %s",
			n.Name, s.Name, s.Image, shortID(s.ImageID), shortID(ci.Image))
	}
}

// versionMatches compares a kubelet's version with a k3s version; a version given without
// k3s suffix matches any build of that Kubernetes release.
func versionMatches(kubelet string, want profile.Version) bool {
	got, err := profile.ParseVersion(kubelet)
	if err != nil {
		return false
	}
	if want.Suffix == "" {
		got.Suffix = ""
	}
	return got == want
}

const (
	protoICMP = "icmp"
	protoTCP  = api.ProtoTCP
	protoUDP  = api.ProtoUDP
)

// checkPairs sends proto from the probe pod on every node to the one on every other node,
// once: convergence was waited for by the monitors.
func (e *upgradeEnv) checkPairs(ctx context.Context, proto, when string) {
	GinkgoHelper()
	Expect(e.probe.Refresh(ctx)).To(Succeed())
	pairs := e.probe.CrossNodePairs()
	Expect(pairs).To(HaveLen(e.plan.Exp.Nodes*(e.plan.Exp.Nodes-1)), "a probe pod should run on every node %s", when)
	for _, pair := range pairs {
		to := e.probe.PodIP(probe.InPod, pair.To)
		r := observe(func() any {
			switch proto {
			case protoICMP:
				return e.probe.Ping(ctx, probe.InPod, pair.From, to, 56, false, probe.Count(3))
			case protoTCP:
				return e.probe.Dial(ctx, probe.InPod, pair.From, api.ProtoTCP, net.JoinHostPort(to, strconv.Itoa(probe.TCPPort)))
			default:
				return e.probe.Dial(ctx, probe.InPod, pair.From, api.ProtoUDP, net.JoinHostPort(to, strconv.Itoa(probe.UDPPort)))
			}
		})
		Expect(r).To(probe.Succeed(), "%s from the pod on %s to the pod on %s %s", proto, pair.From, pair.To, when)
	}
}

// observe runs a probe again, at most twice more, while it did not run at all (the pod exec
// carrying it failed or came back empty, which happens on a loaded machine): that is no
// answer about the network. A probe that ran and failed is returned as it is.
func observe(probeOnce func() any) any {
	var r any
	for try := 0; try < 3; try++ {
		if r = probeOnce(); ran(r) {
			break
		}
		GinkgoWriter.Printf("probe did not run, trying again: %+v\n", r)
		time.Sleep(2 * time.Second)
	}
	return r
}

func ran(r any) bool {
	switch r := r.(type) {
	case api.DialResult:
		return r.Attempts > 0
	case api.PingResult:
		return r.Sent > 0 || r.MsgTooLong
	case api.DNSResult:
		return r.Count > 0
	}
	return true
}

func (e *upgradeEnv) checkService(ctx context.Context, when string) {
	GinkgoHelper()
	svc := &corev1.Service{}
	Expect(e.kube.Resources().Get(ctx, probe.Service, probeNamespace, svc)).To(Succeed())
	target := net.JoinHostPort(svc.Spec.ClusterIP, "80")
	for _, n := range e.probe.Nodes(probe.InPod) {
		r := observe(func() any { return e.probe.Dial(ctx, probe.InPod, n, api.ProtoHTTP, target, probe.Count(3)) }).(api.DialResult)
		Expect(r).To(probe.Succeed(), "HTTP from the pod on %s to Service %s (%s) %s", n, probe.Service, target, when)
		Expect(r.Reply).To(HavePrefix("netprobe-"), "the answer should come from a probe pod")
	}
}

func (e *upgradeEnv) checkDNS(ctx context.Context, when string) {
	GinkgoHelper()
	want := e.plan.Exp.APIServerServiceIP.String()
	for _, n := range e.probe.Nodes(probe.InPod) {
		r := observe(func() any {
			return e.probe.DNS(ctx, probe.InPod, n, probe.DNSQuery{Name: "kubernetes.default", Search: true})
		}).(api.DNSResult)
		Expect(r).To(probe.Succeed(), "kubernetes.default from the pod on %s through the search list %s", n, when)
		Expect(r.Addrs).To(ConsistOf(want), "kubernetes.default should resolve to the API server's ClusterIP %s on %s %s", want, n, when)
	}
}

func dnsName(exp profile.Expectations) string { return "kubernetes.default.svc." + exp.ClusterDomain }

// tearDown deletes the cluster unless KEEP_CLUSTERS asks to keep it.
func (e *upgradeEnv) tearDown(ctx SpecContext) {
	keep := settings.Keep == config.KeepAlways || (settings.Keep == config.KeepOnFailure && e.failed)
	if keep {
		GinkgoWriter.Printf("keeping cluster %s (KEEP_CLUSTERS=%s); kubeconfig: %s; remove with `make clean-clusters`\n",
			e.cluster.Name, settings.Keep, e.cluster.Kubeconfig)
		return
	}
	start := time.Now()
	err := e.cluster.Delete(ctx)
	e.phase("delete", start)
	Expect(err).NotTo(HaveOccurred(), "deleting cluster %s", e.cluster.Name)
}

func msSince(from, to time.Time) float64 { return float64(to.Sub(from).Microseconds()) / 1000 }

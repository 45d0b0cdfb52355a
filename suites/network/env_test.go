package network

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"

	"github.com/k3snet/e2e/framework/cluster"
	"github.com/k3snet/e2e/framework/config"
	"github.com/k3snet/e2e/framework/diag"
	"github.com/k3snet/e2e/framework/kube"
	"github.com/k3snet/e2e/framework/probe"
	"github.com/k3snet/e2e/framework/profile"
	"github.com/k3snet/e2e/framework/report"
)

// probeNamespace is where the suite deploys its probes in clusters it owns.
const probeNamespace = "k3snet-probe"

// clusterEnv is what every spec of one profile shares: the profile, what k3s must build
// for it, and the running cluster with its probes.
type clusterEnv struct {
	Profile *profile.Profile
	Exp     profile.Expectations
	Cluster *cluster.Cluster
	Kube    *kube.Client
	Probe   *probe.Probe

	failed  bool
	timings []cluster.Timing
	diagDir string // the profile's diagnostics bundle, once collected
}

// describeProfile registers the Ordered container of one profile: one cluster, created in
// BeforeAll and deleted after the last spec, shared by every spec of every area.
func describeProfile(p *profile.Profile) {
	exp := p.ExpectFor(k3sVersion)
	Describe("profile "+p.Name, Ordered, Label(exp.Labels()...), func() {
		env := &clusterEnv{Profile: p, Exp: exp}
		if exp.StartRefused {
			refusalSpecs(env)
			return
		}
		BeforeAll(func(ctx SpecContext) {
			if settings.Existing {
				env.attach(ctx)
				return
			}
			if exp.NeedsWireGuard {
				env.requireWireGuard(ctx)
			}
			env.setUp(ctx)
		}, NodeTimeout(20*time.Minute))
		AfterEach(func(ctx SpecContext) {
			if CurrentSpecReport().Failed() {
				env.failed = true
				env.collectDiagnostics(ctx)
			}
		}, NodeTimeout(4*time.Minute))
		systemSpecs(env)
		podNetworkSpecs(env)
		dataplaneSpecs(env)
		noCNISpecs(env)
		policySpecs(env)
		perfSpecs(env)
		dnsSpecs(env)
		serviceSpecs(env)
		loadBalancerSpecs(env)
		ingressSpecs(env)
		// Last: the failover check stops and restarts a node.
		metallbSpecs(env)
	})
}

func (e *clusterEnv) phase(name string, start time.Time) {
	d := time.Since(start)
	e.timings = append(e.timings, cluster.Timing{Phase: name, Duration: d})
	GinkgoWriter.Printf("[%s] %s took %s\n", e.Profile.Name, name, d.Round(100*time.Millisecond))
}

// setUp boots the profile's cluster and deploys the probes. Each step's failure message
// says what was being waited for.
func (e *clusterEnv) setUp(ctx context.Context) {
	GinkgoHelper()
	p := e.Profile
	images := []string{settings.NetprobeImage}
	if e.Exp.MetalLB {
		images = append(images, settings.MetalLBImages...)
	}
	By(fmt.Sprintf("creating cluster %s: %d server(s), %d agent(s), flannel %s, image %s",
		cluster.Name(p.Name, settings.RunID), p.Servers, p.AgentCount(), e.Exp.Backend, settings.K3sImage))
	start := time.Now()
	c := e.create(ctx, images)
	e.Cluster = c
	e.timings = append(e.timings, c.Timings...)
	GinkgoWriter.Printf("[%s] cluster up and images imported in %s\n", p.Name, time.Since(start).Round(100*time.Millisecond))
	DeferCleanup(e.tearDown, NodeTimeout(3*time.Minute))

	var err error
	e.Kube, err = kube.New(c.Kubeconfig)
	Expect(err).NotTo(HaveOccurred())

	start = time.Now()
	if e.Exp.PodNetwork {
		By("waiting for every node to be Ready")
		Expect(e.Kube.WaitNodesReady(ctx, e.Exp.Nodes, 4*time.Minute)).To(Succeed())
	} else {
		By("waiting for every node to register (no CNI: they stay NotReady)")
		Eventually(ctx, e.Kube.Nodes).WithTimeout(3*time.Minute).Should(HaveLen(e.Exp.Nodes),
			"all %d nodes of profile %s should register with the API server", e.Exp.Nodes, p.Name)
	}
	e.phase("ready", start)

	e.deployProbes(ctx)
}

// create boots the profile's cluster, trying up to CREATE_ATTEMPTS times. A cluster that
// does not come up says nothing about its network, and on a loaded machine a node can miss
// k3d's wait; a failed attempt is removed, its node logs are kept under the profile's
// artifacts and its duration is reported as the phase "create-failed". Only the last
// attempt's error fails the spec.
func (e *clusterEnv) create(ctx context.Context, images []string) *cluster.Cluster {
	GinkgoHelper()
	p := e.Profile
	var err error
	for attempt := 1; ; attempt++ {
		start := time.Now()
		var c *cluster.Cluster
		c, err = cluster.Create(ctx, p, cluster.Options{
			RunID: settings.RunID, Image: settings.K3sImage, ImportImages: images, Log: GinkgoWriter,
		})
		if err == nil {
			return c
		}
		if attempt >= settings.CreateAttempts || ctx.Err() != nil {
			break
		}
		e.phase("create-failed", start)
		logFile := e.saveCreateLogs(attempt, err)
		GinkgoWriter.Printf("[%s] cluster creation attempt %d of %d failed after %s: %v\n  node logs: %s\n  trying again\n",
			p.Name, attempt, settings.CreateAttempts, time.Since(start).Round(100*time.Millisecond), err, logFile)
	}
	Expect(err).NotTo(HaveOccurred(), "creating the cluster of profile %s (%d attempt(s))", p.Name, settings.CreateAttempts)
	return nil
}

// saveCreateLogs writes a failed creation's error and node log tails to the profile's
// artifacts directory and returns the file's path.
func (e *clusterEnv) saveCreateLogs(attempt int, err error) string {
	var b strings.Builder
	fmt.Fprintf(&b, "cluster creation attempt %d: %v\n", attempt, err)
	var ce *cluster.CreateError
	if errors.As(err, &ce) {
		b.WriteString(ce.LogTails(0))
	}
	dir := filepath.Join(settings.Artifacts, e.Profile.Name)
	file := filepath.Join(dir, fmt.Sprintf("create-attempt-%d.log", attempt))
	if mkErr := os.MkdirAll(dir, 0o755); mkErr != nil {
		return "not saved: " + mkErr.Error()
	}
	if wErr := os.WriteFile(file, []byte(b.String()), 0o644); wErr != nil {
		return "not saved: " + wErr.Error()
	}
	return file
}

func (e *clusterEnv) deployProbes(ctx context.Context) {
	ns := e.ns()
	GinkgoHelper()
	start := time.Now()
	By("deploying the probes into namespace " + ns)
	Expect(e.Kube.CreateNamespace(ctx, ns, map[string]string{"app.kubernetes.io/part-of": "k3snet-e2e"})).To(Succeed())
	var err error
	e.Probe, err = probe.Deploy(ctx, e.Kube, ns, settings.NetprobeImage)
	Expect(err).NotTo(HaveOccurred())
	ds := []string{probe.HostDS}
	if e.Exp.PodNetwork {
		ds = append(ds, probe.PodDS, probe.PeerDS)
	}
	Expect(e.Probe.WaitReady(ctx, 3*time.Minute, ds...)).To(Succeed(), "probe DaemonSets %v should be ready on every node", ds)
	e.phase("probes", start)
}

// attach points the profile's specs at the existing cluster in KUBECONFIG: the profile says
// what network that cluster was configured with; its node count is whatever it has. The
// probes go into a namespace of this run, removed afterwards.
func (e *clusterEnv) attach(ctx context.Context) {
	GinkgoHelper()
	var err error
	e.Kube, err = kube.New(settings.Kubeconfig)
	Expect(err).NotTo(HaveOccurred())
	nodes, err := e.Kube.Nodes(ctx)
	Expect(err).NotTo(HaveOccurred(), "listing the nodes of the cluster in %s", settings.Kubeconfig)
	Expect(nodes).NotTo(BeEmpty(), "the cluster in %s has no nodes", settings.Kubeconfig)
	e.Exp.Nodes = len(nodes)
	ns := e.ns()
	DeferCleanup(func(ctx context.Context) {
		Expect(e.Kube.DeleteNamespace(ctx, ns, 2*time.Minute)).To(Succeed(), "removing the probe namespace %s", ns)
	}, NodeTimeout(3*time.Minute))
	e.deployProbes(ctx)
}

// ns is the namespace of the probes and of every object the specs create: on an existing
// cluster one of this run's own, removed afterwards.
func (e *clusterEnv) ns() string {
	if settings.Existing {
		return probeNamespace + "-" + settings.RunID
	}
	return probeNamespace
}

// ownClusterOnly skips a spec that changes nodes (fault injection, installs): the suite
// does that only to clusters it created.
func (e *clusterEnv) ownClusterOnly(what string) {
	if e.Cluster == nil {
		Skip(what + " is done only on clusters the suite created, not on an existing cluster (EXISTING_CLUSTER=1)")
	}
}

// needsLifecycle skips a spec that must create, stop or delete nodes: impossible on a
// cluster the suite does not own.
func (e *clusterEnv) needsLifecycle() {
	if e.Cluster == nil {
		Skip("needs to control the cluster's nodes; not done on an existing cluster (EXISTING_CLUSTER=1)")
	}
}

// tearDown deletes the cluster unless KEEP_CLUSTERS asks to keep it.
func (e *clusterEnv) tearDown(ctx SpecContext) {
	keep := settings.Keep == config.KeepAlways || (settings.Keep == config.KeepOnFailure && e.failed)
	if keep {
		AddReportEntry(report.TimingsEntry(e.Profile.Name, e.reportPhases()))
		GinkgoWriter.Printf("keeping cluster %s (KEEP_CLUSTERS=%s); kubeconfig: %s; remove with `make clean-clusters`\n",
			e.Cluster.Name, settings.Keep, e.Cluster.Kubeconfig)
		return
	}
	start := time.Now()
	// Not the node's context: an interrupt (Ctrl-C) cancels it, and the cluster must go anyway.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	err := e.Cluster.Delete(dctx)
	e.phase("delete", start)
	AddReportEntry(report.TimingsEntry(e.Profile.Name, e.reportPhases()))
	Expect(err).NotTo(HaveOccurred(), "deleting cluster %s", e.Cluster.Name)
}

// reportPhases hands the profile's timings to the run report; "checks" is derived there
// from the specs' own durations.
func (e *clusterEnv) reportPhases() []report.Phase {
	out := make([]report.Phase, 0, len(e.timings))
	for _, t := range e.timings {
		out = append(out, report.Phase{Name: t.Phase, Duration: t.Duration})
	}
	return out
}

// collectDiagnostics writes the profile's failure bundle at its first failure, while the
// cluster is still in the state that failed, and names it in the failed spec's report.
func (e *clusterEnv) collectDiagnostics(ctx context.Context) {
	if e.Cluster == nil {
		return // the create failed: its error already carries the node logs
	}
	if e.diagDir == "" {
		src := diag.Sources{Kube: e.Kube, ContainerLogs: cluster.ContainerLogs, ProbeNamespace: e.ns()}
		if e.Probe != nil {
			src.ProbeNamespace = e.Probe.Namespace
		}
		if e.Probe != nil { // a nil *probe.Probe must not become a non-nil interface
			src.Exec = e.Probe
		}
		for _, n := range e.Cluster.Nodes {
			src.Nodes = append(src.Nodes, n.Name)
			if n.Container != n.Name {
				if src.Containers == nil {
					src.Containers = map[string]string{}
				}
				src.Containers[n.Name] = n.Container
			}
		}
		b, err := diag.Collect(ctx, filepath.Join(settings.Artifacts, e.Profile.Name), src)
		if err != nil {
			GinkgoWriter.Printf("[%s] diagnostics bundle not written: %v\n", e.Profile.Name, err)
			return
		}
		e.diagDir = b.Dir
		GinkgoWriter.Printf("[%s] diagnostics bundle: %s (%d files, %d collection errors in %s)\n",
			e.Profile.Name, b.Dir, len(b.Files), len(b.Errors), diag.ErrorsFile)
	}
	AddReportEntry(report.DiagnosticsEntry(e.Profile.Name, e.diagDir))
}

// nodeIP returns a node's InternalIP as Kubernetes reports it.
func nodeIP(n *corev1.Node) string {
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	return ""
}

package network

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"

	"github.com/k3snet/e2e/fixtures/netprobe/api"
	"github.com/k3snet/e2e/framework/metallb"
	"github.com/k3snet/e2e/framework/probe"
)

const (
	metallbPoolName = "k3snet-pool"
	// metallbInstall bounds MetalLB's rollout after the manifest is applied: controller,
	// a speaker per node and the webhook endpoint (23s measured on the lab machine).
	metallbInstall = 4 * time.Minute
	// metallbAssign bounds the time from creating a LoadBalancer Service to MetalLB writing
	// a pool address into its status (about 4s measured on the lab machine).
	metallbAssign = 60 * time.Second
	// metallbAnnounce bounds the time until an assigned address answers on the Docker
	// network: the elected speaker starts answering ARP as soon as it sees the assignment.
	metallbAnnounce = 30 * time.Second
	// metallbFailoverBound bounds the time from the announcing node's container stopping to
	// HTTP answering again at the address. Measured on the lab machine: ~6.3s (memberlist
	// declares the dead speaker after ~5s, a survivor takes the address and sends gratuitous
	// ARP). The bound leaves room for a busy 2-core machine and stays well below the ~38s
	// after which Kubernetes marks the node NotReady, so a pass shows that MetalLB's own
	// failure detection moved the address, not the node lifecycle controller.
	metallbFailoverBound = 20 * time.Second
	// metallbConflictWindow is how long a Service asking for an address that another Service
	// holds is watched: MetalLB assigns a free address within about 4s, so nothing in 10s
	// means it refused.
	metallbConflictWindow = 10 * time.Second
)

// clientKeepAlive is what a long-lived client container runs: 60 loopback probes 10s apart,
// about ten minutes, after which it exits and Docker removes it even if the run died first.
var clientKeepAlive = []string{"dial", "--proto", "udp", "--target", "127.0.0.1:9", "--count", "60", "--interval", "10s", "--timeout", "1s"}

func metallbSpecs(e *clusterEnv) {
	Context("MetalLB", Label("area:metallb"), func() {
		var pool metallb.Pool
		BeforeEach(func(ctx SpecContext) {
			if !e.Exp.MetalLB {
				Skip("profile " + e.Profile.Name + " does not install MetalLB (addons.metallb)")
			}
			if !e.Exp.PodNetwork {
				Skip("MetalLB needs a pod network (flannel-backend=" + e.Exp.Backend + ")")
			}
			// Installing MetalLB and failing its nodes over are for clusters the suite owns.
			e.needsLifecycle()
			if pool.Name == "" {
				pool = e.installMetalLB(ctx)
			}
		})

		It("assigns a LoadBalancer Service an address from the pool and serves it to the Docker network", func(ctx SpecContext) {
			svc := e.lbService("netprobe-mlb", 80, nil)
			created := e.createService(ctx, svc)
			ip, took := e.waitPoolAddress(ctx, pool, svc.Name, created)
			AddReportEntry("MetalLB address time "+e.Profile.Name, fmt.Sprintf("%s assigned %s after the Service was created", ip, took.Round(100*time.Millisecond)))

			target := net.JoinHostPort(ip.String(), "80")
			Eventually(ctx, func(ctx context.Context) api.DialResult {
				return e.dialFromOutside(ctx, target, probe.Count(3))
			}).WithTimeout(metallbAnnounce).Should(probe.Succeed(), "HTTP from %s to %s (%s) within %s of the assignment", e.outside(), svc.Name, target, metallbAnnounce)
			r := e.dialFromOutside(ctx, target, probe.Count(3))
			Expect(r).To(probe.Succeed(), "HTTP from %s to %s (%s)", e.outside(), svc.Name, target)
			for _, reply := range r.Replies {
				Expect(reply).To(HavePrefix(probe.PodDS+"-"), "answers at %s should come from netprobe pods", target)
			}
		})

		It(fmt.Sprintf("moves the address to another node within %s when the announcing node stops", metallbFailoverBound), func(ctx SpecContext) {
			svc := e.lbService("netprobe-mlb-failover", 80, nil)
			created := e.createService(ctx, svc)
			ip, _ := e.waitPoolAddress(ctx, pool, svc.Name, created)
			target := net.JoinHostPort(ip.String(), "80")

			// A long-lived client: exec in it takes well under a second, where starting a
			// container per probe takes seconds and would blur the measurement.
			client, err := e.Cluster.StartClient(ctx, settings.NetprobeImage, clientKeepAlive...)
			Expect(err).NotTo(HaveOccurred(), "starting a client container on %s", e.Cluster.Network)
			DeferCleanup(client.Close)
			dial := func(ctx context.Context) api.DialResult {
				out, err := client.Exec(ctx, append([]string{"/netprobe"}, probe.DialArgs(api.ProtoHTTP, target, probe.Timeout(time.Second))...)...)
				return decodeDial(target, out, err)
			}
			Eventually(ctx, dial).WithTimeout(metallbAnnounce).Should(probe.Succeed(), "HTTP from client %s to %s (%s) before the failover", client.Name, svc.Name, target)

			nodes, err := e.Kube.Nodes(ctx)
			Expect(err).NotTo(HaveOccurred())
			var all, agents []string
			for i := range nodes {
				all = append(all, nodes[i].Name)
				if _, server := nodes[i].Labels["node-role.kubernetes.io/control-plane"]; !server {
					agents = append(agents, nodes[i].Name)
				}
			}
			Expect(len(agents)).To(BeNumerically(">=", 2), "failover needs two agents that may announce, profile %s has %v", e.Profile.Name, agents)
			announcer := e.announcer(ctx, ip, all)
			Expect(agents).To(ContainElement(announcer), "the L2Advertisement lets agents only announce %s", ip)
			var survivors []string
			for _, n := range all {
				if n != announcer {
					survivors = append(survivors, n)
				}
			}

			restarted := false
			restart := func(ctx context.Context) {
				if restarted {
					return
				}
				restarted = true
				started := time.Now()
				Expect(e.Cluster.StartNode(ctx, announcer)).To(Succeed(), "starting node %s again", announcer)
				// Later specs expect the whole cluster back: the node, its probes, its speaker.
				// The node was down for less than the node monitor grace period, so the API
				// still shows it Ready with ready pods; only containers started after the
				// restart prove that its kubelet runs them again.
				Expect(e.Kube.WaitNodesReady(ctx, e.Exp.Nodes, 4*time.Minute)).To(Succeed())
				e.waitPodsRestarted(ctx, announcer, started, 4*time.Minute)
				Expect(e.Probe.WaitReady(ctx, 3*time.Minute, probe.HostDS, probe.PodDS, probe.PeerDS)).To(Succeed(), "probes should run again on %s", announcer)
				Expect(e.Kube.WaitDaemonSetReady(ctx, metallb.Namespace, metallb.Speaker, 3*time.Minute)).To(Succeed(), "the speaker should run again on %s", announcer)
			}
			DeferCleanup(restart)

			By("stopping node " + announcer + ", which announces " + ip.String())
			stopStart := time.Now()
			Expect(e.Cluster.StopNode(ctx, announcer)).To(Succeed(), "stopping node %s", announcer)
			stopped := time.Now()
			probes := 0
			Eventually(ctx, func(ctx context.Context) int {
				probes++
				return dial(ctx).Successes
			}).WithTimeout(metallbFailoverBound).WithPolling(100*time.Millisecond).Should(BeNumerically(">", 0),
				"HTTP to %s should answer again within %s of node %s stopping", target, metallbFailoverBound, announcer)
			failover := time.Since(stopped)
			next := e.announcer(ctx, ip, survivors)
			AddReportEntry("MetalLB failover "+e.Profile.Name, fmt.Sprintf("%s moved from %s to %s: HTTP answered again %s after the node's container stopped (docker stop took %s; %d probes of ≤1s)",
				ip, announcer, next, failover.Round(100*time.Millisecond), stopped.Sub(stopStart).Round(100*time.Millisecond), probes))

			By("starting node " + announcer + " again")
			restart(ctx)
			Eventually(ctx, dial).WithTimeout(metallbAnnounce).Should(probe.Succeed(), "HTTP to %s after node %s is back", target, announcer)
		})

		It("gives a second Service a different address from the pool", func(ctx SpecContext) {
			first := e.lbService("netprobe-mlb-first", 80, nil)
			second := e.lbService("netprobe-mlb-second", 80, nil)
			ipFirst, _ := e.waitPoolAddress(ctx, pool, first.Name, e.createService(ctx, first))
			ipSecond, _ := e.waitPoolAddress(ctx, pool, second.Name, e.createService(ctx, second))
			Expect(ipSecond).NotTo(Equal(ipFirst), "%s and %s must not share an address without allow-shared-ip", first.Name, second.Name)
			target := net.JoinHostPort(ipSecond.String(), "80")
			Eventually(ctx, func(ctx context.Context) api.DialResult {
				return e.dialFromOutside(ctx, target)
			}).WithTimeout(metallbAnnounce).Should(probe.Succeed(), "HTTP from %s to %s (%s)", e.outside(), second.Name, target)
		})

		It("keeps a held address from other Services and frees it when its Service is deleted", func(ctx SpecContext) {
			holder := e.lbService("netprobe-mlb-holder", 80, nil)
			ip, _ := e.waitPoolAddress(ctx, pool, holder.Name, e.createService(ctx, holder))
			want := map[string]string{metallb.AnnotationLoadBalancerIPs: ip.String()}

			contender := e.lbService("netprobe-mlb-contender", 80, want)
			e.createService(ctx, contender)
			// An expected refusal: watch a bounded window, never retry.
			Consistently(ctx, func(ctx context.Context) ([]string, error) {
				return e.lbIngress(ctx, contender.Namespace, contender.Name)
			}).WithTimeout(metallbConflictWindow).WithPolling(time.Second).Should(BeEmpty(),
				"MetalLB must not give %s, held by %s, to %s", ip, holder.Name, contender.Name)
			e.deleteService(ctx, contender.Namespace, contender.Name)

			By("deleting " + holder.Name)
			e.deleteService(ctx, holder.Namespace, holder.Name)
			taker := e.lbService("netprobe-mlb-taker", 80, want)
			created := e.createService(ctx, taker)
			got, took := e.waitPoolAddress(ctx, pool, taker.Name, created)
			Expect(got).To(Equal(ip), "%s asked for %s, which %s released", taker.Name, ip, holder.Name)
			target := net.JoinHostPort(ip.String(), "80")
			Eventually(ctx, func(ctx context.Context) api.DialResult {
				return e.dialFromOutside(ctx, target)
			}).WithTimeout(metallbAnnounce).Should(probe.Succeed(), "HTTP from %s to %s at the reused %s", e.outside(), taker.Name, target)
			AddReportEntry("MetalLB address reuse "+e.Profile.Name, fmt.Sprintf("%s reassigned %s after the new Service was created", ip, took.Round(100*time.Millisecond)))
		})
	})
}

// installMetalLB installs MetalLB and configures a layer-2 pool carved from the cluster's
// Docker subnet, away from every node's address.
func (e *clusterEnv) installMetalLB(ctx context.Context) metallb.Pool {
	GinkgoHelper()
	pool, err := metallb.CarvePool(metallbPoolName, e.Cluster.Subnet)
	Expect(err).NotTo(HaveOccurred(), "carving a MetalLB pool from %s", e.Cluster.Subnet)
	ips, byIP := e.nodeIPs(ctx)
	for _, ip := range ips {
		Expect(pool.Contains(netip.MustParseAddr(ip))).To(BeFalse(), "pool %s must not contain the IP of node %s (%s)", pool, byIP[ip], ip)
	}

	By("installing MetalLB from " + settings.MetalLBManifest)
	start := time.Now()
	m, err := metallb.LoadManifest(ctx, settings.MetalLBManifest)
	Expect(err).NotTo(HaveOccurred())
	Expect(metallb.Install(ctx, e.Kube, m, metallbInstall)).To(Succeed())
	By("configuring pool " + pool.String())
	// The webhook may refuse pools for a few seconds after its endpoint is ready, while the
	// controller installs its certificate.
	Eventually(ctx, func(ctx context.Context) error {
		return metallb.Configure(ctx, e.Kube, pool)
	}).WithTimeout(2*time.Minute).Should(Succeed(), "MetalLB's webhook should accept pool %s within 2m", pool)
	e.phase("metallb", start)
	return pool
}

// waitPoolAddress waits for MetalLB to give Service name (in the probe namespace) one address
// and checks that it comes from pool; it returns the address and how long after created it
// appeared.
func (e *clusterEnv) waitPoolAddress(ctx context.Context, pool metallb.Pool, name string, created time.Time) (netip.Addr, time.Duration) {
	GinkgoHelper()
	var ips []string
	Eventually(ctx, func(ctx context.Context) ([]string, error) {
		var err error
		ips, err = e.lbIngress(ctx, e.ns(), name)
		return ips, err
	}).WithTimeout(metallbAssign).WithPolling(250*time.Millisecond).Should(HaveLen(1), "MetalLB should give Service %s one address within %s", name, metallbAssign)
	took := time.Since(created)
	ip, err := netip.ParseAddr(ips[0])
	Expect(err).NotTo(HaveOccurred())
	Expect(pool.Contains(ip)).To(BeTrue(), "address %s of %s should come from pool %s", ip, name, pool)
	svc := &corev1.Service{}
	Expect(e.Kube.Resources().Get(ctx, name, e.ns(), svc)).To(Succeed())
	Expect(svc.Annotations).To(HaveKeyWithValue(metallb.AnnotationAllocatedFromPool, pool.Name), "MetalLB should record the pool of %s's address", name)
	return ip, took
}

// announcer waits until exactly one speaker among nodes announces ip and returns its node.
func (e *clusterEnv) announcer(ctx context.Context, ip netip.Addr, nodes []string) string {
	GinkgoHelper()
	var got []string
	// The function's error must be nil too: an unreadable speaker log is retried, not taken
	// for "not announcing".
	Eventually(ctx, func(ctx context.Context) ([]string, error) {
		var err error
		got, err = metallb.Announcers(ctx, e.Kube, ip.String(), nodes)
		return got, err
	}).WithTimeout(metallbAnnounce).Should(HaveLen(1), "exactly one speaker on %v should announce %s", nodes, ip)
	return got[0]
}

// waitPodsRestarted waits until the probe pods and the MetalLB speaker on node run
// containers started after since, and are ready.
func (e *clusterEnv) waitPodsRestarted(ctx context.Context, node string, since time.Time, timeout time.Duration) {
	GinkgoHelper()
	since = since.Truncate(time.Second) // container start times have whole seconds
	Eventually(ctx, func(ctx context.Context) ([]string, error) {
		var stale []string
		for _, sel := range []struct{ ns, labels string }{
			{e.ns(), "app.kubernetes.io/part-of=k3snet-e2e"},
			{metallb.Namespace, metallb.SpeakerLabels},
		} {
			pods, err := e.Kube.Pods(ctx, sel.ns, sel.labels)
			if err != nil {
				return nil, err
			}
			for i := range pods {
				p := &pods[i]
				if p.Spec.NodeName != node || p.DeletionTimestamp != nil {
					continue
				}
				fresh := podReady(p) && len(p.Status.ContainerStatuses) > 0
				for _, c := range p.Status.ContainerStatuses {
					if c.State.Running == nil || c.State.Running.StartedAt.Time.Before(since) {
						fresh = false
					}
				}
				if !fresh {
					stale = append(stale, p.Namespace+"/"+p.Name)
				}
			}
		}
		return stale, nil
	}).WithTimeout(timeout).Should(BeEmpty(), "the probe and speaker pods on %s should run restarted containers and be ready within %s", node, timeout)
}

// Package probe drives netprobe inside a cluster: it deploys the probe DaemonSets, runs the
// probe's client subcommands through pod exec and returns their typed results.
package probe

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/k3snet/e2e/fixtures/manifests"
	"github.com/k3snet/e2e/fixtures/netprobe/api"
	"github.com/k3snet/e2e/framework/kube"
)

// DaemonSet names, as in fixtures/manifests/probe.yaml.
const (
	PodDS  = "netprobe"      // pod network, behind the Services
	PeerDS = "netprobe-peer" // pod network, second pod per node
	HostDS = "netprobe-host" // node network namespace, privileged, node root at /host

	Service         = "netprobe"
	HeadlessService = "netprobe-headless"
	NodePortService = "netprobe-nodeport"

	HTTPPort = 8080
	TCPPort  = 8081
	UDPPort  = 8082
	PerfPort = 8083
	// The host probe listens on the node's own ports, far from k3s's.
	HostHTTPPort = 18080
	HostTCPPort  = 18081
	HostUDPPort  = 18082
)

// Which probe pod of a node runs a command.
type Where int

const (
	InPod  Where = iota // the netprobe pod (pod network)
	InPeer              // the netprobe-peer pod (pod network)
	OnHost              // the netprobe-host pod (node network namespace)
)

func (w Where) String() string { return [...]string{"pod", "peer pod", "host"}[w] }

// Probe is the deployed probe of one cluster.
type Probe struct {
	Kube      *kube.Client
	Namespace string
	// Pods per DaemonSet, by node name.
	pods map[string]map[string]corev1.Pod
}

// Deploy renders and applies the probe manifest into namespace ns (which must exist). It
// does not wait: call WaitReady for the DaemonSets the profile can run.
func Deploy(ctx context.Context, kc *kube.Client, ns, image string) (*Probe, error) {
	m, err := manifests.Render("probe.yaml", map[string]string{"Image": image})
	if err != nil {
		return nil, err
	}
	if err := kc.Apply(ctx, m, ns); err != nil {
		return nil, fmt.Errorf("deploying the probe into %s: %w", ns, err)
	}
	return &Probe{Kube: kc, Namespace: ns, pods: map[string]map[string]corev1.Pod{}}, nil
}

// WaitReady waits for the given DaemonSets and records their pods by node.
func (p *Probe) WaitReady(ctx context.Context, timeout time.Duration, daemonsets ...string) error {
	for _, ds := range daemonsets {
		if err := p.Kube.WaitDaemonSetReady(ctx, p.Namespace, ds, timeout); err != nil {
			return err
		}
	}
	return p.Refresh(ctx)
}

// Refresh re-reads the probe pods (after a node restart, say).
func (p *Probe) Refresh(ctx context.Context) error {
	for _, ds := range []string{PodDS, PeerDS, HostDS} {
		pods, err := p.Kube.Pods(ctx, p.Namespace, "app.kubernetes.io/name="+ds)
		if err != nil {
			return err
		}
		byNode := map[string]corev1.Pod{}
		for _, pod := range pods {
			if pod.DeletionTimestamp == nil && pod.Status.Phase == corev1.PodRunning {
				byNode[pod.Spec.NodeName] = pod
			}
		}
		p.pods[ds] = byNode
	}
	return nil
}

func dsOf(w Where) string { return [...]string{PodDS, PeerDS, HostDS}[w] }

// Pod returns the probe pod of a kind on a node.
func (p *Probe) Pod(w Where, node string) (corev1.Pod, bool) {
	pod, ok := p.pods[dsOf(w)][node]
	return pod, ok
}

// PodIP returns the IP of the probe pod of a kind on a node ("" if none).
func (p *Probe) PodIP(w Where, node string) string {
	pod, _ := p.Pod(w, node)
	return pod.Status.PodIP
}

// Nodes lists the nodes that have a probe pod of the given kind, sorted.
func (p *Probe) Nodes(w Where) []string {
	var out []string
	for n := range p.pods[dsOf(w)] {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Pair is an ordered pair of nodes: traffic goes From → To.
type Pair struct{ From, To string }

func (p Pair) String() string { return p.From + " → " + p.To }

// CrossNodePairs returns every ordered pair of distinct nodes that run the pod probe.
func (p *Probe) CrossNodePairs() []Pair {
	var out []Pair
	nodes := p.Nodes(InPod)
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				out = append(out, Pair{a, b})
			}
		}
	}
	return out
}

// run executes netprobe in the chosen pod of node and decodes its JSON answer into out.
func (p *Probe) run(ctx context.Context, w Where, node string, timeout time.Duration, out any, args ...string) error {
	pod, ok := p.Pod(w, node)
	if !ok {
		return fmt.Errorf("no running %s probe on node %s", w, node)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout+20*time.Second)
	defer cancel()
	stdout, stderr, err := p.Kube.Exec(ctx, p.Namespace, pod.Name, "netprobe", append([]string{"/netprobe"}, args...)...)
	if err != nil {
		return fmt.Errorf("exec netprobe %s in %s/%s on %s: %v (stderr: %s)", args[0], p.Namespace, pod.Name, node, err, strings.TrimSpace(stderr))
	}
	if err := json.Unmarshal([]byte(stdout), out); err != nil {
		return fmt.Errorf("netprobe %s on %s printed no JSON: %v (stdout %q, stderr %q)", args[0], node, err, stdout, stderr)
	}
	return nil
}

// Dial sends proto traffic from the chosen pod of node to target (host:port).
func (p *Probe) Dial(ctx context.Context, w Where, node, proto, target string, opts ...Opt) api.DialResult {
	o := options(opts)
	r := api.DialResult{Proto: proto, Target: target}
	err := p.run(ctx, w, node, o.timeout*time.Duration(o.count), &r, DialArgs(proto, target, opts...)...)
	if err != nil {
		r.OK, r.Error = false, err.Error()
	}
	return r
}

// DialArgs is the netprobe command line of Dial, for a netprobe run outside the cluster's
// pods (a client container).
func DialArgs(proto, target string, opts ...Opt) []string {
	o := options(opts)
	args := []string{"dial", "--proto", proto, "--target", target, "--timeout", o.timeout.String(), "--count", strconv.Itoa(o.count)}
	if o.host != "" {
		args = append(args, "--host", o.host)
	}
	if o.path != "" {
		args = append(args, "--path", o.path)
	}
	return args
}

// Ping sends ICMP echo requests of payload size from the chosen pod of node to target.
func (p *Probe) Ping(ctx context.Context, w Where, node, target string, size int, df bool, opts ...Opt) api.PingResult {
	o := options(opts)
	r := api.PingResult{Target: target, Size: size, DF: df}
	args := []string{"ping", "--target", target, "--size", strconv.Itoa(size), "--count", strconv.Itoa(o.count), "--timeout", o.timeout.String()}
	if df {
		args = append(args, "--df")
	}
	if err := p.run(ctx, w, node, o.timeout*time.Duration(o.count), &r, args...); err != nil {
		r.OK, r.Error = false, err.Error()
	}
	return r
}

// DNSQuery describes one lookup.
type DNSQuery struct {
	Name           string
	Server         string // "" = the pod's resolv.conf nameserver
	Proto          string // "udp" (default) or "tcp"
	Type           string // "A" (default), "AAAA", "SRV"
	Search         bool   // apply resolv.conf search domains like a stub resolver
	ExpectNXDomain bool
}

// DNS performs a lookup from the chosen pod of node.
func (p *Probe) DNS(ctx context.Context, w Where, node string, q DNSQuery, opts ...Opt) api.DNSResult {
	o := options(opts)
	r := api.DNSResult{Name: q.Name, Server: q.Server, Proto: q.Proto}
	args := []string{"dns", "--name", q.Name, "--timeout", o.timeout.String(), "--count", strconv.Itoa(o.count)}
	if q.Server != "" {
		args = append(args, "--server", q.Server)
	}
	if q.Proto != "" {
		args = append(args, "--proto", q.Proto)
	}
	if q.Type != "" {
		args = append(args, "--type", q.Type)
	}
	if q.Search {
		args = append(args, "--search")
	}
	if q.ExpectNXDomain {
		args = append(args, "--expect-nxdomain")
	}
	if err := p.run(ctx, w, node, o.timeout*time.Duration(o.count), &r, args...); err != nil {
		r.OK, r.Error = false, err.Error()
	}
	return r
}

// Links reads interfaces and routes in the chosen probe's network namespace; on the host it
// also reads flannel's subnet.env from the node's filesystem.
func (p *Probe) Links(ctx context.Context, w Where, node string) api.LinksResult {
	var r api.LinksResult
	args := []string{"links"}
	if w == OnHost {
		args = append(args, "--subnet-env", "/host/run/flannel/subnet.env")
	}
	if err := p.run(ctx, w, node, 10*time.Second, &r, args...); err != nil {
		r.OK, r.Error = false, err.Error()
	}
	return r
}

// WGCheck asks the node's kernel whether it can create a WireGuard link.
func (p *Probe) WGCheck(ctx context.Context, node string) api.WGCheckResult {
	var r api.WGCheckResult
	if err := p.run(ctx, OnHost, node, 10*time.Second, &r, "wgcheck"); err != nil {
		r.OK, r.Error = false, err.Error()
	}
	return r
}

// NodeExec runs a command in the node's root filesystem and network namespace through the
// host probe (iptables for fault injection, iptables-save for diagnostics).
func (p *Probe) NodeExec(ctx context.Context, node string, cmd ...string) api.ExecResult {
	var r api.ExecResult
	if err := p.run(ctx, OnHost, node, 30*time.Second, &r, append([]string{"nodeexec", "--"}, cmd...)...); err != nil {
		r.OK, r.ExitCode, r.Error = false, -1, err.Error()
	}
	return r
}

// Perf measures throughput (stream) or request-response latency (rr) to target.
func (p *Probe) Perf(ctx context.Context, w Where, node, mode, target string, d time.Duration) api.PerfResult {
	r := api.PerfResult{Mode: mode, Target: target}
	if err := p.run(ctx, w, node, d+5*time.Second, &r, "perf", "--mode", mode, "--target", target, "--duration", d.String()); err != nil {
		r.OK, r.Error = false, err.Error()
	}
	return r
}

// Opt tunes a probe call.
type Opt func(*callOpts)

type callOpts struct {
	timeout time.Duration
	count   int
	host    string
	path    string
}

// Host sets the HTTP Host header of an http dial (ingress routing).
func Host(h string) Opt { return func(o *callOpts) { o.host = h } }

// Path sets the HTTP path of an http dial (default /hostname).
func Path(p string) Opt { return func(o *callOpts) { o.path = p } }

// Timeout bounds each attempt (default 2s).
func Timeout(d time.Duration) Opt { return func(o *callOpts) { o.timeout = d } }

// Count sets the number of attempts (default 1).
func Count(n int) Opt { return func(o *callOpts) { o.count = n } }

func options(opts []Opt) callOpts {
	o := callOpts{timeout: 2 * time.Second, count: 1}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// ResolvConf reads /etc/resolv.conf of the chosen probe pod, parsed like a stub resolver.
func (p *Probe) ResolvConf(ctx context.Context, w Where, node string) api.ResolvConfResult {
	var r api.ResolvConfResult
	if err := p.run(ctx, w, node, 5*time.Second, &r, "resolvconf"); err != nil {
		r.OK, r.Error = false, err.Error()
	}
	return r
}

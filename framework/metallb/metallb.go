// Package metallb installs MetalLB (native manifest, layer-2 mode) into a suite cluster,
// carves its address pool from the cluster's Docker subnet and reads which node announces
// an address.
package metallb

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/e2e-framework/klient/k8s/resources"
	"sigs.k8s.io/e2e-framework/klient/wait"

	"github.com/k3snet/e2e/fixtures/manifests"
	"github.com/k3snet/e2e/framework/kube"
)

// Names in MetalLB's native manifest (v0.13 and later).
const (
	Namespace      = "metallb-system"
	Controller     = "controller"              // Deployment
	Speaker        = "speaker"                 // DaemonSet and its container
	WebhookService = "metallb-webhook-service" // served by the controller
	SpeakerLabels  = "app=metallb,component=speaker"

	// AnnotationLoadBalancerIPs asks MetalLB for specific addresses.
	AnnotationLoadBalancerIPs = "metallb.io/loadBalancerIPs"
	// AnnotationAllocatedFromPool is written by the controller: the pool an address came from.
	AnnotationAllocatedFromPool = "metallb.io/ip-allocated-from-pool"
)

// LoadManifest reads MetalLB's manifest from a file, or fetches it when src is an http(s)
// URL (official-image mode; the offline lab always gives a file).
func LoadManifest(ctx context.Context, src string) ([]byte, error) {
	if !strings.HasPrefix(src, "http://") && !strings.HasPrefix(src, "https://") {
		b, err := os.ReadFile(src)
		if err != nil {
			return nil, fmt.Errorf("METALLB_MANIFEST: %w", err)
		}
		return b, nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return nil, fmt.Errorf("METALLB_MANIFEST: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching the MetalLB manifest: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching the MetalLB manifest %s: %s", src, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 16<<20))
}

// Install applies the manifest and waits until the controller is available, a speaker is
// ready on every node and the validating webhook has a ready endpoint: address pools are
// refused (or, worse, accepted unvalidated) before that.
func Install(ctx context.Context, kc *kube.Client, manifest []byte, timeout time.Duration) error {
	if err := kc.ApplyClusterScoped(ctx, manifest); err != nil {
		return fmt.Errorf("applying the MetalLB manifest: %w", err)
	}
	deadline := time.Now().Add(timeout)
	if err := kc.WaitDeploymentAvailable(ctx, Namespace, Controller, time.Until(deadline)); err != nil {
		return err
	}
	if err := kc.WaitDaemonSetReady(ctx, Namespace, Speaker, time.Until(deadline)); err != nil {
		return err
	}
	return waitWebhook(ctx, kc, time.Until(deadline))
}

func waitWebhook(ctx context.Context, kc *kube.Client, timeout time.Duration) error {
	var last string
	err := wait.For(func(ctx context.Context) (bool, error) {
		var slices discoveryv1.EndpointSliceList
		if err := kc.Resources(Namespace).List(ctx, &slices, resources.WithLabelSelector(discoveryv1.LabelServiceName+"="+WebhookService)); err != nil {
			last = err.Error()
			return false, nil
		}
		last = fmt.Sprintf("%d endpoint slices, none with a ready endpoint", len(slices.Items))
		for _, s := range slices.Items {
			for _, ep := range s.Endpoints {
				if ep.Conditions.Ready != nil && *ep.Conditions.Ready {
					return true, nil
				}
			}
		}
		return false, nil
	}, wait.WithContext(ctx), wait.WithTimeout(timeout), wait.WithInterval(time.Second))
	if err != nil {
		return fmt.Errorf("waiting %s for Service %s/%s to have a ready endpoint: %s", timeout, Namespace, WebhookService, last)
	}
	return nil
}

// Pool is a range of addresses MetalLB hands out.
type Pool struct {
	Name        string
	First, Last netip.Addr
}

func (p Pool) String() string { return p.First.String() + "-" + p.Last.String() }

// Contains reports whether ip lies in the pool.
func (p Pool) Contains(ip netip.Addr) bool {
	return p.First.Compare(ip) <= 0 && ip.Compare(p.Last) <= 0
}

// Size is the number of addresses in the pool.
func (p Pool) Size() int {
	if !p.First.Is4() || !p.Last.Is4() {
		return 0
	}
	return int(u32(p.Last)-u32(p.First)) + 1
}

// CarvePool takes the 51 addresses from 55 to 5 below the top of an IPv4 subnet (.200-.250
// of a /24). Docker hands container addresses out from the bottom (lowest free first) and
// k3d puts its nodes there too, so a handful of nodes and client containers never reach
// them; staying below the broadcast address leaves room for nothing else to collide with.
func CarvePool(name string, subnet *net.IPNet) (Pool, error) {
	ones, bits := subnet.Mask.Size()
	base, ok := netip.AddrFromSlice(subnet.IP.To4())
	if !ok || bits != 32 {
		return Pool{}, fmt.Errorf("subnet %s: MetalLB pools are carved from IPv4 subnets only", subnet)
	}
	if ones > 24 {
		return Pool{}, fmt.Errorf("subnet %s is smaller than a /24: no room for a pool above the nodes", subnet)
	}
	top := u32(base) | (1<<(32-ones) - 1)
	return Pool{Name: name, First: addr(top - 55), Last: addr(top - 5)}, nil
}

func u32(a netip.Addr) uint32 { b := a.As4(); return binary.BigEndian.Uint32(b[:]) }

func addr(v uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// Configure applies the pool and an L2Advertisement for it (fixtures/manifests/metallb-l2.yaml).
// Creating an object that exists is not an error, so callers may retry while the webhook
// warms up.
func Configure(ctx context.Context, kc *kube.Client, p Pool) error {
	m, err := manifests.Render("metallb-l2.yaml", map[string]string{
		"Name": p.Name, "Namespace": Namespace, "First": p.First.String(), "Last": p.Last.String(),
	})
	if err != nil {
		return err
	}
	if err := kc.Apply(ctx, m, ""); err != nil {
		return fmt.Errorf("applying MetalLB pool %s (%s): %w", p.Name, p, err)
	}
	return nil
}

// speakerEvent is the part of a speaker log line (go-kit JSON) that says what happened to
// which addresses: serviceAnnounced carries "ips", serviceWithdrawn "ip".
type speakerEvent struct {
	Event string   `json:"event"`
	IPs   []string `json:"ips"`
	IP    []string `json:"ip"`
}

// Announcers returns the nodes, among onNodes, whose speaker announces ip: those whose last
// log event about ip is serviceAnnounced. The speakers' own log is the ground truth here:
// ServiceL2Status in MetalLB v0.15 can keep naming a dead node after a failover.
func Announcers(ctx context.Context, kc *kube.Client, ip string, onNodes []string) ([]string, error) {
	pods, err := kc.Pods(ctx, Namespace, SpeakerLabels)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, n := range onNodes {
		want[n] = true
	}
	var out []string
	for _, pod := range pods {
		if !want[pod.Spec.NodeName] {
			continue
		}
		logs, err := kc.Logs(ctx, Namespace, pod.Name, Speaker, 5000)
		if err != nil {
			return nil, fmt.Errorf("logs of speaker %s on %s: %w", pod.Name, pod.Spec.NodeName, err)
		}
		announced := false
		for _, line := range strings.Split(logs, "\n") {
			if !strings.Contains(line, ip) {
				continue
			}
			var ev speakerEvent
			if json.Unmarshal([]byte(line), &ev) != nil {
				continue
			}
			switch {
			case ev.Event == "serviceAnnounced" && contains(ev.IPs, ip):
				announced = true
			case ev.Event == "serviceWithdrawn" && contains(ev.IP, ip):
				announced = false
			}
		}
		if announced {
			out = append(out, pod.Spec.NodeName)
		}
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

package diag

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/k3snet/e2e/fixtures/netprobe/api"
	"github.com/k3snet/e2e/framework/kube"
)

// fakeExec answers node commands like a k3s node without nft; nodes in hang never answer.
type fakeExec struct {
	mu    sync.Mutex
	calls []string
	hang  map[string]bool
}

func (f *fakeExec) NodeExec(ctx context.Context, node string, cmd ...string) api.ExecResult {
	f.mu.Lock()
	f.calls = append(f.calls, node+": "+strings.Join(cmd, " "))
	f.mu.Unlock()
	if f.hang[node] {
		<-ctx.Done()
		return api.ExecResult{ExitCode: -1, Error: "exec netprobe nodeexec: " + ctx.Err().Error()}
	}
	switch cmd[0] {
	case "nft":
		return api.ExecResult{ExitCode: -1, Error: `exec: "nft": executable file not found in $PATH`}
	case "iptables-save":
		return api.ExecResult{OK: true, Stdout: "*filter\n:FLANNEL-FWD - [0:0]\nCOMMIT\n", Truncated: true}
	case "cat":
		return api.ExecResult{OK: true, Stdout: "FLANNEL_NETWORK=10.42.0.0/16\nFLANNEL_SUBNET=10.42.0.1/24\n"}
	}
	return api.ExecResult{OK: true, Stdout: node + " " + strings.Join(cmd, " ") + "\n"}
}

func fakeLogs(ctx context.Context, container string, tail int) (string, error) {
	if container == "gone" {
		return "", errors.New("no such container: gone")
	}
	return "k3s log of " + container + " tail " + strconv.Itoa(tail) + "\n", nil
}

var clock = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func init() { now = func() time.Time { return clock } }

func ptr[T any](v T) *T { return &v }

func objects() []runtime.Object {
	created := metav1.NewTime(clock.Add(-5 * time.Minute))
	node := func(name, role, ip, cidr string, ready corev1.ConditionStatus) *corev1.Node {
		return &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: created,
				Labels:        map[string]string{"node-role.kubernetes.io/" + role: "true"},
				ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "k3s"}}},
			Spec: corev1.NodeSpec{PodCIDR: cidr, PodCIDRs: []string{cidr}},
			Status: corev1.NodeStatus{
				Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}},
				Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}},
				NodeInfo:   corev1.NodeSystemInfo{KubeletVersion: "v1.31.1+k3s1", OSImage: "K3s v1.31.1+k3s1", KernelVersion: "6.8.0", ContainerRuntimeVersion: "containerd://1.7"},
			},
		}
	}
	return []runtime.Object{
		node("k3d-c-server-0", "control-plane", "172.28.0.2", "10.42.0.0/24", corev1.ConditionTrue),
		node("k3d-c-agent-0", "agent", "172.28.0.3", "10.42.1.0/24", corev1.ConditionFalse),
		&corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "coredns-abc", Namespace: "kube-system", CreationTimestamp: created},
			Spec:       corev1.PodSpec{NodeName: "k3d-c-server-0", Containers: []corev1.Container{{Name: "coredns"}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.42.0.3", ContainerStatuses: []corev1.ContainerStatus{{
				Name: "coredns", RestartCount: 2, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
			}}},
		},
		&corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "netprobe-host-x1", Namespace: "k3snet-probe", CreationTimestamp: created},
			Spec: corev1.PodSpec{NodeName: "k3d-c-agent-0", InitContainers: []corev1.Container{{Name: "init"}},
				Containers: []corev1.Container{{Name: "netprobe"}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "172.28.0.3", ContainerStatuses: []corev1.ContainerStatus{{
				Name: "netprobe", Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
			}}},
		},
		&corev1.Pod{ // not in a collected namespace: listed, but no logs
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", CreationTimestamp: created},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web"}}},
			Status:     corev1.PodStatus{Phase: corev1.PodPending},
		},
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "netprobe-nodeport", Namespace: "k3snet-probe", CreationTimestamp: created},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, ClusterIP: "10.43.12.7", ClusterIPs: []string{"10.43.12.7"},
				Selector: map[string]string{"app.kubernetes.io/name": "netprobe"},
				Ports:    []corev1.ServicePort{{Port: 8080, NodePort: 30080, Protocol: corev1.ProtocolTCP}}},
		},
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "lb", Namespace: "default", CreationTimestamp: created},
			Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ClusterIP: "10.43.0.99", Ports: []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}}},
		},
		&discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: "netprobe-nodeport-abcde", Namespace: "k3snet-probe", CreationTimestamp: created,
				Labels: map[string]string{discoveryv1.LabelServiceName: "netprobe-nodeport"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Port: ptr(int32(8080)), Protocol: ptr(corev1.ProtocolTCP)}},
			Endpoints: []discoveryv1.Endpoint{
				{Addresses: []string{"10.42.0.5"}, NodeName: ptr("k3d-c-server-0"), Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)}},
				{Addresses: []string{"10.42.1.5"}, NodeName: ptr("k3d-c-agent-0"), Conditions: discoveryv1.EndpointConditions{Ready: ptr(false)}},
			},
		},
		&corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: "coredns-abc.1", Namespace: "kube-system"},
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "coredns-abc"},
			Type:           corev1.EventTypeWarning, Reason: "BackOff", Count: 7,
			Message:       "Back-off restarting failed container\tcoredns",
			LastTimestamp: metav1.NewTime(clock.Add(-time.Minute)),
		},
	}
}

var nodes = []string{"k3d-c-server-0", "k3d-c-agent-0"}

func read(t *testing.T, b Bundle, rel string) string {
	t.Helper()
	data, err := os.ReadFile(b.Path(rel))
	if err != nil {
		t.Fatalf("bundle file %s: %v", rel, err)
	}
	return string(data)
}

func TestCollectEverything(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vxlan")
	exec := &fakeExec{}
	b, err := Collect(context.Background(), dir, Sources{
		Kube:           &kube.Client{Clientset: fake.NewClientset(objects()...)},
		Exec:           exec,
		Nodes:          nodes,
		ContainerLogs:  fakeLogs,
		ProbeNamespace: "k3snet-probe",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"endpointslices.txt", "endpointslices.yaml", "errors.txt", "events.txt", "events.yaml",
		"k3d-c-agent-0/flannel-subnet.env", "k3d-c-agent-0/ip-addr.txt", "k3d-c-agent-0/ip-route.txt", "k3d-c-agent-0/iptables-save.txt", "k3d-c-agent-0/k3s.log",
		"k3d-c-server-0/flannel-subnet.env", "k3d-c-server-0/ip-addr.txt", "k3d-c-server-0/ip-route.txt", "k3d-c-server-0/iptables-save.txt", "k3d-c-server-0/k3s.log",
		"logs/k3snet-probe/netprobe-host-x1_init.log", "logs/k3snet-probe/netprobe-host-x1_netprobe.log",
		"logs/kube-system/coredns-abc_coredns.log", "logs/kube-system/coredns-abc_coredns.previous.log",
		"nodes.txt", "nodes.yaml", "pods.txt", "pods.yaml", "services.txt", "services.yaml",
	}
	if !slices.Equal(b.Files, want) {
		t.Errorf("files:\n got %v\nwant %v", b.Files, want)
	}
	for _, f := range b.Files {
		if _, err := os.Stat(b.Path(f)); err != nil {
			t.Errorf("listed file missing: %v", err)
		}
	}
	if b.Dir != dir || !b.Has("nodes.txt") || b.Has("k3d-c-agent-0/nft-ruleset.txt") {
		t.Errorf("bundle %+v", b)
	}

	// The missing nft is an error of its own steps only.
	errs := read(t, b, ErrorsFile)
	if len(b.Errors) != 2 || !strings.Contains(errs, "k3d-c-agent-0: nft list ruleset: exec: \"nft\": executable file not found") ||
		!strings.Contains(errs, "k3d-c-server-0: nft list ruleset:") {
		t.Errorf("errors.txt:\n%s", errs)
	}

	checks := map[string][]string{
		"k3d-c-server-0/ip-addr.txt":       {"k3d-c-server-0 ip -d addr"},
		"k3d-c-agent-0/ip-route.txt":       {"k3d-c-agent-0 ip route"},
		"k3d-c-agent-0/iptables-save.txt":  {":FLANNEL-FWD", "# [truncated"},
		"k3d-c-agent-0/flannel-subnet.env": {"FLANNEL_SUBNET=10.42.0.1/24"},
		"k3d-c-agent-0/k3s.log":            {"k3s log of k3d-c-agent-0 tail 2000"},
		"nodes.txt": {
			"NAME             STATUS     ROLES           AGE   VERSION        INTERNAL-IP   EXTERNAL-IP   POD-CIDRS      OS-IMAGE",
			"k3d-c-agent-0    NotReady   agent           5m",
			"k3d-c-server-0   Ready      control-plane   5m    v1.31.1+k3s1   172.28.0.2    <none>        10.42.0.0/24   K3s v1.31.1+k3s1   6.8.0",
		},
		"pods.txt": {
			"NAMESPACE      NAME               READY   STATUS             RESTARTS   AGE   IP           NODE",
			"kube-system    coredns-abc        0/1     CrashLoopBackOff   2          5m    10.42.0.3    k3d-c-server-0",
			"k3snet-probe   netprobe-host-x1   1/1     Running            0",
			"default        web                0/1     Pending            0          5m    <none>       <none>",
		},
		"services.txt": {
			"default        lb                  LoadBalancer   10.43.0.99   <pending>     80/TCP           5m    <none>",
			"k3snet-probe   netprobe-nodeport   NodePort       10.43.12.7   <none>        8080:30080/TCP   5m    app.kubernetes.io/name=netprobe",
		},
		"endpointslices.txt":  {"netprobe-nodeport   IPv4          8080/TCP   10.42.0.5@k3d-c-server-0,10.42.1.5@k3d-c-agent-0(not-ready)"},
		"events.txt":          {"kube-system   Warning   BackOff   pod/coredns-abc   7       Back-off restarting failed container coredns"},
		"nodes.yaml":          {"kind: NodeList", "kind: Node\n", "podCIDR: 10.42.1.0/24"},
		"pods.yaml":           {"kind: PodList", "CrashLoopBackOff"},
		"endpointslices.yaml": {"apiVersion: discovery.k8s.io/v1", "kind: EndpointSliceList"},
		"logs/kube-system/coredns-abc_coredns.log": {"fake logs"},
	}
	for rel, subs := range checks {
		got := read(t, b, rel)
		for _, s := range subs {
			if !strings.Contains(got, s) {
				t.Errorf("%s lacks %q:\n%s", rel, s, got)
			}
		}
	}
	if y := read(t, b, "nodes.yaml"); strings.Contains(y, "managedFields") {
		t.Errorf("managedFields should be dropped:\n%s", y)
	}
	if len(exec.calls) != len(nodes)*len(NodeCommands) {
		t.Errorf("node commands run: %v", exec.calls)
	}
}

func TestCollectWithoutAPIOrProbe(t *testing.T) {
	var noProbe *fakeExec // a nil *probe.Probe reaches Collect like this
	b, err := Collect(context.Background(), t.TempDir(), Sources{
		Exec:          noProbe,
		Nodes:         []string{"k3d-c-server-0", "gone"},
		ContainerLogs: fakeLogs,
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"errors.txt", "k3d-c-server-0/k3s.log"}; !slices.Equal(b.Files, want) {
		t.Errorf("files %v, want %v", b.Files, want)
	}
	errs := read(t, b, ErrorsFile)
	for _, s := range []string{
		"kubernetes: no API client",
		"gone: k3s log: no such container: gone",
		"gone: node commands: no host probe",
		"k3d-c-server-0: node commands: no host probe",
	} {
		if !strings.Contains(errs, s) {
			t.Errorf("errors.txt lacks %q:\n%s", s, errs)
		}
	}
}

func TestCollectUnansweringNode(t *testing.T) {
	exec := &fakeExec{hang: map[string]bool{"k3d-c-agent-0": true}}
	start := time.Now()
	b, err := Collect(context.Background(), t.TempDir(), Sources{
		Exec: exec, Nodes: nodes, StepTimeout: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	// One timeout for the silent node, not one per command.
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("collection took %s", took)
	}
	if !b.Has("k3d-c-server-0/ip-route.txt") || b.Has("k3d-c-agent-0/ip-addr.txt") {
		t.Errorf("files %v", b.Files)
	}
	errs := read(t, b, ErrorsFile)
	if !strings.Contains(errs, "k3d-c-agent-0: ip -d addr: exec netprobe nodeexec: context deadline exceeded") ||
		!strings.Contains(errs, "k3d-c-agent-0: node commands: skipped the 4 remaining command(s)") {
		t.Errorf("errors.txt:\n%s", errs)
	}
	var agentCalls int
	for _, c := range exec.calls {
		if strings.HasPrefix(c, "k3d-c-agent-0:") {
			agentCalls++
		}
	}
	if agentCalls != 1 {
		t.Errorf("the silent node was asked %d times: %v", agentCalls, exec.calls)
	}
}

func TestCollectNodesFromAPIAndFailingList(t *testing.T) {
	cs := fake.NewClientset(objects()...)
	cs.PrependReactor("list", "events", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("the server is currently unable to handle the request")
	})
	b, err := Collect(context.Background(), t.TempDir(), Sources{
		Kube: &kube.Client{Clientset: cs}, Exec: &fakeExec{}, ProbeNamespace: "k3snet-probe",
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"k3d-c-agent-0/ip-addr.txt", "k3d-c-server-0/ip-addr.txt", "nodes.txt", "pods.yaml"} {
		if !b.Has(f) {
			t.Errorf("missing %s: %v", f, b.Files)
		}
	}
	if b.Has("events.txt") || b.Has("k3d-c-server-0/k3s.log") {
		t.Errorf("unexpected files: %v", b.Files)
	}
	if errs := read(t, b, ErrorsFile); !strings.Contains(errs, "events: the server is currently unable") {
		t.Errorf("errors.txt:\n%s", errs)
	}
}

func TestCollectUnwritableDir(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Collect(context.Background(), filepath.Join(f, "sub"), Sources{}); err == nil {
		t.Error("a bundle that cannot be written must be an error")
	}
}

func TestSafeName(t *testing.T) {
	for in, want := range map[string]string{"a/b": "a_b", "..": "_..", "": "_", "node-1": "node-1"} {
		if got := safeName(in); got != want {
			t.Errorf("safeName(%q) = %q, want %q", in, got, want)
		}
	}
}

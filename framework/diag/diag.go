// Package diag collects a failure diagnostics bundle: what the nodes' network stacks, the
// Kubernetes API and the logs looked like right after a spec failed, written as plain files
// under $ARTIFACTS/<profile>/ so a failure can be understood after the cluster is gone.
//
// Collection is best-effort by design: it runs exactly when something is broken (the API
// server may be down, a node stopped, a tool missing on the node), so every step is bounded
// by its own timeout, an error in one step is written to errors.txt, and the other steps
// still run.
package diag

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/k3snet/e2e/fixtures/netprobe/api"
	"github.com/k3snet/e2e/framework/kube"
)

// ErrorsFile lists the steps that failed; it is always written (empty when none failed), so
// its absence means the collection itself never ran.
const ErrorsFile = "errors.txt"

// NodeExecer runs a command in a node's root filesystem and network namespace.
// *probe.Probe satisfies it through the hostNetwork probe.
type NodeExecer interface {
	NodeExec(ctx context.Context, node string, cmd ...string) api.ExecResult
}

// LogReader returns the last tail lines of a container's log; cluster.ContainerLogs is one.
type LogReader func(ctx context.Context, container string, tail int) (string, error)

// NodeCommand is one command run on every node and the file its stdout goes to.
type NodeCommand struct {
	File string
	Cmd  []string
}

// NodeCommands are run on every node, in order. `ip -d` shows the VXLAN/WireGuard attributes
// flannel sets; the rulesets show kube-proxy's and the policy controller's rules under
// either iptables backend; subnet.env is what flannel handed to its CNI plugin.
var NodeCommands = []NodeCommand{
	{"ip-addr.txt", []string{"ip", "-d", "addr"}},
	{"ip-route.txt", []string{"ip", "route"}},
	{"iptables-save.txt", []string{"iptables-save"}},
	{"nft-ruleset.txt", []string{"nft", "list", "ruleset"}},
	{"flannel-subnet.env", []string{"cat", "/run/flannel/subnet.env"}},
}

// Sources is what Collect reads from. Every field may be missing: a nil Kube (the API is
// down or was never reached), a nil Exec (no probe deployed), a nil ContainerLogs (an
// existing cluster, not containers of ours) each only drop the steps that need them.
type Sources struct {
	// Kube is used through its Clientset only.
	Kube *kube.Client
	Exec NodeExecer
	// Nodes are the Kubernetes node names. When empty they are listed from the API.
	Nodes []string
	// Containers maps a node name to its container name where they differ; k3d names node
	// containers after their nodes.
	Containers map[string]string
	// ContainerLogs reads a node container's log (k3s runs as the container's main process).
	ContainerLogs LogReader
	// ProbeNamespace is where the probe pods run; their logs are collected with kube-system's.
	ProbeNamespace string

	// StepTimeout bounds each step (default 30s).
	StepTimeout time.Duration
	// PodLogTail and NodeLogTail are the log lines kept per pod container (default 500)
	// and per node container (default 2000).
	PodLogTail, NodeLogTail int
	// Parallel is how many steps run at once (default 4).
	Parallel int
}

// Bundle is what Collect wrote.
type Bundle struct {
	Dir string
	// Files are the paths written, relative to Dir, slash-separated and sorted; ErrorsFile is
	// always among them.
	Files []string
	// Errors are the failed steps, as in ErrorsFile.
	Errors []string
}

// Path returns the absolute path of a bundle file.
func (b Bundle) Path(rel string) string { return filepath.Join(b.Dir, filepath.FromSlash(rel)) }

// Has reports whether the bundle holds a file.
func (b Bundle) Has(rel string) bool {
	i := sort.SearchStrings(b.Files, rel)
	return i < len(b.Files) && b.Files[i] == rel
}

// Collect writes a diagnostics bundle into dir. The error is only for a bundle that could not
// be written at all (dir not creatable); failed steps are in Bundle.Errors and errors.txt.
func Collect(ctx context.Context, dir string, src Sources) (Bundle, error) {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Bundle{Dir: dir}, fmt.Errorf("diagnostics bundle directory: %w", err)
	}
	c := &collector{dir: dir, src: src.withDefaults()}
	c.sem = make(chan struct{}, c.src.Parallel)
	c.run(ctx)

	sort.Strings(c.errs)
	var errText string
	if len(c.errs) > 0 {
		errText = strings.Join(c.errs, "\n") + "\n"
	}
	if err := c.write(ErrorsFile, []byte(errText)); err != nil {
		return c.bundle(), fmt.Errorf("writing %s: %w", ErrorsFile, err)
	}
	return c.bundle(), nil
}

func (s Sources) withDefaults() Sources {
	if s.StepTimeout <= 0 {
		s.StepTimeout = 30 * time.Second
	}
	if s.PodLogTail <= 0 {
		s.PodLogTail = 500
	}
	if s.NodeLogTail <= 0 {
		s.NodeLogTail = 2000
	}
	if s.Parallel <= 0 {
		s.Parallel = 4
	}
	// A nil *probe.Probe stored in the interface is not a nil interface; treat it as absent
	// rather than calling a method on it.
	if isNil(s.Exec) {
		s.Exec = nil
	}
	return s
}

func isNil(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Interface, reflect.Map, reflect.Slice, reflect.Func:
		return rv.IsNil()
	}
	return false
}

type collector struct {
	dir string
	src Sources
	sem chan struct{}
	wg  sync.WaitGroup

	mu    sync.Mutex
	files []string
	errs  []string
}

func (c *collector) clientset() kubernetes.Interface {
	if c.src.Kube == nil || isNil(c.src.Kube.Clientset) {
		return nil
	}
	return c.src.Kube.Clientset
}

func (c *collector) run(ctx context.Context) {
	cs := c.clientset()
	if cs == nil {
		c.fail("kubernetes", errors.New("no API client: cluster-wide objects and pod logs not collected"))
	}
	nodes := c.src.Nodes
	if len(nodes) == 0 && cs != nil {
		// Without node names nothing per node can be collected, so this one step runs first.
		c.step(ctx, "node names", func(ctx context.Context) error {
			var err error
			nodes, err = nodeNames(ctx, cs)
			return err
		})
	}
	if len(nodes) == 0 {
		c.fail("nodes", errors.New("no node names known: per-node files not collected"))
	}

	for _, n := range nodes {
		c.nodeSteps(ctx, n)
	}
	if cs != nil {
		c.clusterSteps(ctx, cs)
	}
	c.wg.Wait()
}

// step runs fn now, bounded by the step timeout, and records its error.
func (c *collector) step(ctx context.Context, name string, fn func(ctx context.Context) error) {
	ctx, cancel := context.WithTimeout(ctx, c.src.StepTimeout)
	defer cancel()
	if err := fn(ctx); err != nil {
		c.fail(name, err)
	}
}

// spawn runs a sequence of steps in the background, each in a free worker slot.
func (c *collector) spawn(ctx context.Context, fn func(ctx context.Context)) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		fn(ctx)
	}()
}

// slot runs one step in a worker slot.
func (c *collector) slot(ctx context.Context, name string, fn func(ctx context.Context) error) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		c.fail(name, fmt.Errorf("not started: %w", ctx.Err()))
		return
	}
	defer func() { <-c.sem }()
	c.step(ctx, name, fn)
}

func (c *collector) fail(step string, err error) {
	msg := strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "\n    ")
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errs = append(c.errs, step+": "+msg)
}

// write stores a bundle file (rel is slash-separated) and records it.
func (c *collector) write(rel string, data []byte) error {
	p := filepath.Join(c.dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.files = append(c.files, rel)
	return nil
}

func (c *collector) bundle() Bundle {
	c.mu.Lock()
	defer c.mu.Unlock()
	files := append([]string(nil), c.files...)
	sort.Strings(files)
	files = compactStrings(files)
	return Bundle{Dir: c.dir, Files: files, Errors: append([]string(nil), c.errs...)}
}

func compactStrings(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// nodeSteps collects one node: its container log (from Docker, which works with the API
// down) and, through the host probe, its network state.
func (c *collector) nodeSteps(ctx context.Context, node string) {
	dir := safeName(node)
	if c.src.ContainerLogs != nil {
		ctr := node
		if m, ok := c.src.Containers[node]; ok && m != "" {
			ctr = m
		}
		c.spawn(ctx, func(ctx context.Context) {
			c.slot(ctx, node+": k3s log", func(ctx context.Context) error {
				out, err := c.src.ContainerLogs(ctx, ctr, c.src.NodeLogTail)
				if out != "" {
					if werr := c.write(dir+"/k3s.log", []byte(out)); werr != nil {
						return errors.Join(err, werr)
					}
				}
				return err
			})
		})
	}
	if c.src.Exec == nil {
		c.fail(node+": node commands", errors.New("no host probe: network state not collected"))
		return
	}
	// One node's commands run in order: when the node does not answer, the first timeout
	// skips the rest instead of paying the timeout once per command.
	c.spawn(ctx, func(ctx context.Context) {
		for i, nc := range NodeCommands {
			name := node + ": " + strings.Join(nc.Cmd, " ")
			timedOut := false
			c.slot(ctx, name, func(ctx context.Context) error {
				err := c.nodeCommand(ctx, node, dir+"/"+nc.File, nc.Cmd)
				timedOut = ctx.Err() != nil
				return err
			})
			if timedOut && i < len(NodeCommands)-1 {
				c.fail(node+": node commands", fmt.Errorf("skipped the %d remaining command(s): the node did not answer in %s", len(NodeCommands)-1-i, c.src.StepTimeout))
				return
			}
		}
	})
}

func (c *collector) nodeCommand(ctx context.Context, node, rel string, cmd []string) error {
	r := c.src.Exec.NodeExec(ctx, node, cmd...)
	if r.OK || r.Stdout != "" {
		out := r.Stdout
		if r.Truncated {
			out += "\n# [truncated: output exceeded netprobe's capture limit]\n"
		}
		if err := c.write(rel, []byte(out)); err != nil {
			return err
		}
	}
	if r.OK {
		return nil
	}
	msg := r.Error
	if r.ExitCode > 0 {
		msg = fmt.Sprintf("exit status %d", r.ExitCode)
	}
	if s := strings.TrimSpace(r.Stderr); s != "" {
		msg += ": " + s
	}
	if msg == "" {
		msg = "failed without a message"
	}
	return errors.New(msg)
}

package cluster

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

// CreateError is returned by Create when the cluster did not come up. It carries the tail of
// every node container's log, read before the partial cluster was removed, so a spec can
// assert *why* k3s refused to start (an expected refusal is a result, not a crash).
type CreateError struct {
	Err  error
	Logs map[string]string // container name → log tail
}

func (e *CreateError) Error() string { return e.Err.Error() }
func (e *CreateError) Unwrap() error { return e.Err }

// LogTails renders the node logs in container-name order, each under a header; lines > 0
// keeps only the last lines of each.
func (e *CreateError) LogTails(lines int) string {
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(e.Logs)) {
		log := strings.TrimSpace(e.Logs[name])
		if all := strings.Split(log, "\n"); lines > 0 && len(all) > lines {
			log = strings.Join(all[len(all)-lines:], "\n")
		}
		fmt.Fprintf(&b, "\n===== %s (log tail)\n%s\n", name, log)
	}
	return b.String()
}

// ContainerLogs returns the last lines of a container's stdout and stderr.
func ContainerLogs(ctx context.Context, name string, tail int) (string, error) {
	dc, err := docker()
	if err != nil {
		return "", err
	}
	defer dc.Close()
	rc, err := dc.ContainerLogs(ctx, name, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(tail)})
	if err != nil {
		return "", fmt.Errorf("logs of %s: %w", name, err)
	}
	defer rc.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, rc); err != nil {
		return out.String(), err
	}
	return out.String(), nil
}

// nodeLogs reads the log tail of every container of cluster name.
func nodeLogs(ctx context.Context, name string, tail int) map[string]string {
	dc, err := docker()
	if err != nil {
		return nil
	}
	defer dc.Close()
	ctrs, err := dc.ContainerList(ctx, container.ListOptions{All: true, Filters: clusterFilter(name)})
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, c := range ctrs {
		if len(c.Names) == 0 {
			continue
		}
		n := c.Names[0][1:]
		if l, err := ContainerLogs(ctx, n, tail); err == nil {
			out[n] = l
		}
	}
	return out
}

func containerStdout(ctx context.Context, id string) (string, error) {
	dc, err := docker()
	if err != nil {
		return "", err
	}
	defer dc.Close()
	rc, err := dc.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true})
	if err != nil {
		return "", err
	}
	defer rc.Close()
	var out, errOut bytes.Buffer
	_, err = stdcopy.StdCopy(&out, &errOut, rc)
	return out.String(), err
}

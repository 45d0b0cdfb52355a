package cluster

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	dockerclient "github.com/docker/docker/client"
	k3d "github.com/k3d-io/k3d/v5/pkg/types"

	"github.com/k3snet/e2e/framework/profile"
)

func docker() (*dockerclient.Client, error) {
	return dockerclient.NewClientWithOpts(dockerclient.FromEnv, dockerclient.WithAPIVersionNegotiation())
}

// Sweep deletes every cluster made by the run runID ("" = every k3snet cluster of any run)
// and anything such a cluster left behind. It is the safety net behind the per-cluster
// cleanup: after an interrupt or a crash, `make clean-clusters` calls it.
func Sweep(ctx context.Context, runID string) ([]string, error) {
	dc, err := docker()
	if err != nil {
		return nil, err
	}
	defer dc.Close()
	names := map[string]bool{}
	f := filters.NewArgs(filters.Arg("label", LabelRun))
	if runID != "" {
		f = filters.NewArgs(filters.Arg("label", LabelRun+"="+runID))
	}
	ctrs, err := dc.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return nil, err
	}
	for _, c := range ctrs {
		if n := c.Labels[k3d.LabelClusterName]; n != "" {
			names[n] = true
		}
	}
	nets, err := dc.NetworkList(ctx, network.ListOptions{})
	if err != nil {
		return nil, err
	}
	for _, n := range nets {
		cl := strings.TrimPrefix(n.Name, "k3d-")
		if strings.HasPrefix(cl, NamePrefix) && (runID == "" || strings.HasSuffix(cl, "-"+runID)) {
			names[cl] = true
		}
	}
	var errs []error
	var swept []string
	for n := range names {
		swept = append(swept, n)
		c := &Cluster{Name: n}
		if err := c.Delete(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return swept, errors.Join(errs...)
}

// removeLeftovers removes containers, networks and volumes of cluster name that k3d did not
// (for instance because the create was interrupted between two steps).
func removeLeftovers(ctx context.Context, name string) error {
	dc, err := docker()
	if err != nil {
		return err
	}
	defer dc.Close()
	var errs []error
	byLabel := clusterFilter(name)
	ctrs, err := dc.ContainerList(ctx, container.ListOptions{All: true, Filters: byLabel})
	errs = append(errs, err)
	// Client containers on the cluster's network carry their own label (k3d's would make k3d
	// take them for nodes); one left running would keep the network from being removed.
	clients, err := dc.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", LabelClient+"="+name))})
	errs = append(errs, err)
	ctrs = append(ctrs, clients...)
	for _, c := range ctrs {
		if err := dc.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("removing container %v: %w", c.Names, err))
		}
	}
	nets, err := dc.NetworkList(ctx, network.ListOptions{})
	errs = append(errs, err)
	for _, n := range nets {
		if n.Name == "k3d-"+name || n.Labels[k3d.LabelClusterName] == name {
			if err := dc.NetworkRemove(ctx, n.ID); err != nil && !cerrdefs.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("removing network %s: %w", n.Name, err))
			}
		}
	}
	vols, err := dc.VolumeList(ctx, volume.ListOptions{})
	errs = append(errs, err)
	for _, v := range vols.Volumes {
		// k3d labels the volumes it makes; the per-node state volumes carry the name.
		if v.Labels[k3d.LabelClusterName] != name && !strings.HasPrefix(v.Name, name+"-") {
			continue
		}
		if err := dc.VolumeRemove(ctx, v.Name, true); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("removing volume %s: %w", v.Name, err))
		}
	}
	return errors.Join(errs...)
}

func clusterFilter(name string) filters.Args {
	return filters.NewArgs(filters.Arg("label", k3d.LabelClusterName+"="+name))
}

// pickSubnet returns the profile's fixed Docker subnet, or a /24 of 172.28.0.0/14
// that no Docker network uses. A fixed subnet keeps node IPs stable across node restarts
// (without it agents can swap addresses and exec/logs fail with x509 errors for minutes).
func pickSubnet(ctx context.Context, p *profile.Profile, name string) (*net.IPNet, error) {
	if p.Network.DockerSubnet != "" {
		_, n, err := net.ParseCIDR(p.Network.DockerSubnet)
		return n, err
	}
	dc, err := docker()
	if err != nil {
		return nil, err
	}
	defer dc.Close()
	nets, err := dc.NetworkList(ctx, network.ListOptions{})
	if err != nil {
		return nil, err
	}
	var used []*net.IPNet
	for _, n := range nets {
		for _, c := range n.IPAM.Config {
			if _, s, err := net.ParseCIDR(c.Subnet); err == nil {
				used = append(used, s)
			}
		}
	}
	exp := p.Expect()
	used = append(used, prefixNet(exp.ClusterCIDR.String()), prefixNet(exp.ServiceCIDR.String()))
	// Clusters created at the same moment (PARALLEL > 1) list the same networks; starting
	// each search at a place derived from the cluster's name keeps them from picking the
	// same /24.
	h := fnv.New32a()
	h.Write([]byte(name))
	first := int(h.Sum32() % 1024)
	for i := 0; i < 1024; i++ {
		third := (first + i) % 1024
		cand := &net.IPNet{IP: net.IPv4(172, byte(28+third/256), byte(third%256), 0).To4(), Mask: net.CIDRMask(24, 32)}
		free := true
		for _, u := range used {
			if u != nil && (u.Contains(cand.IP) || cand.Contains(u.IP)) {
				free = false
				break
			}
		}
		if free {
			return cand, nil
		}
	}
	return nil, fmt.Errorf("no free /24 left in 172.28.0.0/14 for a Docker network")
}

func prefixNet(s string) *net.IPNet {
	_, n, _ := net.ParseCIDR(s)
	return n
}

// Leftovers lists what still exists of cluster name: containers, networks, volumes.
func Leftovers(ctx context.Context, name string) ([]string, error) {
	dc, err := docker()
	if err != nil {
		return nil, err
	}
	defer dc.Close()
	var out []string
	ctrs, err := dc.ContainerList(ctx, container.ListOptions{All: true, Filters: clusterFilter(name)})
	if err != nil {
		return nil, err
	}
	for _, c := range ctrs {
		out = append(out, "container "+strings.Join(c.Names, ","))
	}
	nets, err := dc.NetworkList(ctx, network.ListOptions{})
	if err != nil {
		return nil, err
	}
	for _, n := range nets {
		if n.Name == "k3d-"+name || n.Labels[k3d.LabelClusterName] == name {
			out = append(out, "network "+n.Name)
		}
	}
	vols, err := dc.VolumeList(ctx, volume.ListOptions{})
	if err != nil {
		return nil, err
	}
	for _, v := range vols.Volumes {
		if v.Labels[k3d.LabelClusterName] == name || strings.HasPrefix(v.Name, name+"-") {
			out = append(out, "volume "+v.Name)
		}
	}
	return out, nil
}

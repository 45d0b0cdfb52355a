#!/usr/bin/env bash
# Builds k3s and the binaries a k3s node needs (runc, containerd shim, CNI plugins) from Go
# modules, into $LAB_CACHE/bin/k3s-$K3S_MODULE_VERSION. Does nothing when they exist.
. "$(dirname "$0")/lib.sh"

OUT="$LAB_CACHE/bin/k3s-$K3S_MODULE_VERSION-$("$GO" env GOVERSION)"
mkdir -p "$OUT"

k3s_version="$K3S_KUBE_VERSION+k3s-${K3S_COMMIT:0:8}"
build_date=$(date -u '+%Y-%m-%dT%H:%M:%SZ')
# k3s refuses to start unless UpstreamGolang names the Go that built it (upstream pins the
# Go release Kubernetes was tested with; the lab builds with the Go it has).
versionflags="
 -X github.com/k3s-io/k3s/pkg/version.UpstreamGolang=$("$GO" env GOVERSION)
 -X github.com/k3s-io/k3s/pkg/version.Version=$k3s_version
 -X github.com/k3s-io/k3s/pkg/version.GitCommit=${K3S_COMMIT:0:8}
 -X k8s.io/client-go/pkg/version.gitVersion=$k3s_version
 -X k8s.io/client-go/pkg/version.gitCommit=$K3S_COMMIT
 -X k8s.io/client-go/pkg/version.gitTreeState=clean
 -X k8s.io/client-go/pkg/version.buildDate=$build_date
 -X k8s.io/component-base/version.gitVersion=$k3s_version
 -X k8s.io/component-base/version.gitCommit=$K3S_COMMIT
 -X k8s.io/component-base/version.gitTreeState=clean
 -X k8s.io/component-base/version.buildDate=$build_date
 -X sigs.k8s.io/cri-tools/pkg/version.Version=$K3S_CRICTL_VERSION
 -X github.com/containerd/containerd/version.Version=$K3S_CONTAINERD_VERSION
 -X github.com/containerd/containerd/version.Package=github.com/k3s-io/containerd
 -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$K3S_KUBE_ROUTER_VERSION
 -X github.com/cloudnativelabs/kube-router/v2/pkg/version.BuildDate=$build_date
"
tags="ctrd apparmor seccomp netcgo osusergo providerless urfave_cli_no_docs"

build_k3s() {
	local src; src=$(modsrc "$K3S_MODULE" "$K3S_MODULE_VERSION")
	cd "$src"
	CGO_ENABLED=1 "$GO" build -tags "$tags" -ldflags "$versionflags -w -s" -o "$OUT/k3s.tmp" ./cmd/server
	mv "$OUT/k3s.tmp" "$OUT/k3s"
}

# runc and the shim come from the forks k3s's go.mod replaces them with, built inside the
# k3s module copy so those replace directives apply.
build_runc() {
	local src; src=$(modsrc "$K3S_MODULE" "$K3S_MODULE_VERSION")
	cd "$src"
	CGO_ENABLED=1 "$GO" build -mod=mod -tags "apparmor seccomp" -ldflags "-w -s -X main.version=${K3S_RUNC_VERSION#v}" -o "$OUT/runc" github.com/opencontainers/runc
}

# The shim must be built in the fork's own module: its go-runc differs from the one k3s's
# module graph selects. The fork declares itself github.com/containerd/containerd, so it is
# fetched through k3s's replace directive and copied from the module cache.
build_shim() {
	local src
	src=$(modcopy "$LAB_CACHE/src/containerd-fork@$K3S_CONTAINERD_VERSION" \
		github.com/containerd/containerd "$(modsrc "$K3S_MODULE" "$K3S_MODULE_VERSION")")
	cd "$src"
	CGO_ENABLED=1 "$GO" build -mod=mod -tags "${tags/netcgo/netgo}" -ldflags "$versionflags -w -s" -o "$OUT/containerd-shim-runc-v2" ./cmd/containerd-shim-runc-v2
}

# -trimpath like every other CGO_ENABLED=0 build of the lab, so the standard library compiled
# for those is reused from the build cache instead of being compiled once more.
build_cni() {
	local src; src=$(modsrc github.com/containernetworking/plugins "$K3S_CNI_PLUGINS_MODULE_VERSION")
	mkdir -p "$OUT/cni"
	cd "$src"
	for p in main/bridge main/loopback ipam/host-local meta/portmap meta/bandwidth meta/firewall; do
		CGO_ENABLED=0 "$GO" build -mod=mod -trimpath -ldflags "-w -s" -o "$OUT/cni/$(basename $p)" ./plugins/$p
	done
	# flannel's CNI plugin: the only module version served is in plugins v0.9.1.
	src=$(modsrc github.com/containernetworking/plugins "$K3S_FLANNEL_CNI_MODULE_VERSION")
	cd "$src"
	CGO_ENABLED=0 "$GO" build -mod=mod -trimpath -ldflags "-w -s" -o "$OUT/cni/flannel" ./plugins/meta/flannel
	touch "$OUT/cni/.complete"
}

[ -x "$OUT/k3s" ] || step k3s-binary build_k3s
[ -x "$OUT/runc" ] || step runc-binary build_runc
[ -x "$OUT/containerd-shim-runc-v2" ] || step shim-binary build_shim
[ -f "$OUT/cni/.complete" ] || step cni-binaries build_cni
log "k3s binaries ready in $OUT"

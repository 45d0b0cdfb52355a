#!/usr/bin/env bash
# Fills the build context of the node image: k3s and its companion binaries (built by
# build-k3s.sh), the lab-only adaptations generated from k3s's own sources, and a tarball of
# the images k3s deploys by default (k3s imports agent/images/*.tar when it starts).
. "$(dirname "$0")/../../lib.sh"
ctx=$1

"$LAB_DIR/build-k3s.sh"
bin="$LAB_CACHE/bin/k3s-$K3S_MODULE_VERSION-$("$GO" env GOVERSION)"
src=$(modsrc "$K3S_MODULE" "$K3S_MODULE_VERSION")

mkdir -p "$ctx/bin" "$ctx/images" "$ctx/etc"
cp -l "$bin/k3s" "$ctx/bin/k3s" 2>/dev/null || cp "$bin/k3s" "$ctx/bin/k3s"
cp "$bin/runc" "$bin/containerd-shim-runc-v2" "$bin"/cni/* "$ctx/bin/"

# containerd: k3s's own template, with restrict_oom_score_adj forced on. The sandbox's
# capability bounding set lacks CAP_SYS_RESOURCE, so the -998 oom_score_adj containerd gives
# pod sandboxes is refused and every pod would hang in ContainerCreating.
awk '/^const ContainerdConfigTemplate = `/{on=1; next} on && /^`/{exit} on{print}' \
	"$src/pkg/agent/templates/templates_linux.go" >"$ctx/etc/containerd.tmpl.orig"
awk '
	/^  restrict_oom_score_adj = true$/ { next }
	{ print }
	/^\[plugins."io.containerd.grpc.v1.cri"\]$/ && !done { print "  restrict_oom_score_adj = true"; done=1 }
' "$ctx/etc/containerd.tmpl.orig" >"$ctx/etc/config.toml.tmpl"
[ "$(grep -c 'restrict_oom_score_adj = true' "$ctx/etc/config.toml.tmpl")" = 1 ] ||
	die "could not force restrict_oom_score_adj in k3s's containerd template"
rm "$ctx/etc/containerd.tmpl.orig"

# flannel CNI: k3s's own conflist at CNI spec 0.4.0, the newest the flannel plugin served by
# the module proxy (plugins v0.9.1) understands.
awk '/^\tcniConf = `/{on=1; sub(/^\tcniConf = `/, ""); print; next} on && /^`/{exit} on{print}' \
	"$src/pkg/agent/flannel/setup_linux.go" | sed 's/"cniVersion":"1.0.0"/"cniVersion":"0.4.0"/' >"$ctx/etc/flannel.conflist"
grep -q '"cniVersion":"0.4.0"' "$ctx/etc/flannel.conflist" || die "could not rewrite the flannel conflist"

# shellcheck disable=SC2086
docker save -o "$ctx/images/k3snet-lab-images.tar" $PAUSE_IMAGE $COREDNS_IMAGE $LOCAL_PATH_IMAGE \
	$BUSYBOX_IMAGE $METRICS_SERVER_IMAGE $TRAEFIK_IMAGE $KLIPPER_HELM_IMAGE $KLIPPER_LB_IMAGE

#!/usr/bin/env bash
# images.sh [build|list|save FILE|env]: the offline lab's entry point.
#   build  builds every image the suite needs into the local Docker engine (cached: an
#          unchanged recipe costs one `docker image inspect`) and writes .lab/images.env
#   list   prints every image reference, one per line
#   save   writes all of them into one archive, for an air-gapped machine (docker load -i)
#   env    writes .lab/images.env only
. "$(dirname "$0")/lib.sh"

# The images built directly; the node image (k3s) also pulls in the add-on images it bakes
# (its DEPENDS), and is built last (see build below).
RECIPES="netprobe metallb-controller metallb-speaker k3d-tools"

# node_deps: the add-on images the node image bakes, as its recipe declares them.
node_deps() {
	# shellcheck disable=SC1091
	(DEPENDS=""; . "$LAB_DIR/images/k3s/image.env"; echo "$DEPENDS")
}

all_refs() {
	local r
	for r in $RECIPES $(node_deps) k3s; do
		# shellcheck source=/dev/null
		(IMAGE_REFS=""; . "$LAB_DIR/images/$r/image.env"; for x in $IMAGE_REFS; do echo "$x"; done)
	done | awk '!seen[$0]++'
}

write_env() {
	mkdir -p "$REPO_DIR/.lab"
	cat >"$REPO_DIR/.lab/images.env" <<ENV
# Written by scripts/lab/images.sh; included by the Makefile. The suite reads these
# variables and does not care whether the lab or a registry provided the images.
IMAGE_SOURCE=lab
K3S_IMAGE=$LAB_K3S_IMAGE
K3S_VERSION=$LAB_K3S_VERSION
K3D_IMAGE_TOOLS=$K3D_TOOLS_IMAGE
NETPROBE_IMAGE=$NETPROBE_IMAGE
METALLB_MANIFEST=$LAB_CACHE/manifests/metallb-native-$METALLB_MODULE_VERSION.yaml
METALLB_IMAGES=$METALLB_CONTROLLER_IMAGE $METALLB_SPEAKER_IMAGE
ENV
	log "wrote .lab/images.env"
}

# build_all: every image. Compiling k3s (~19 min on two cores) starts first, in the
# background, while the other images are built: their single-threaded stretches (linking,
# docker build/save, Debian packages, module downloads) would otherwise leave a core idle.
# The node image itself is packaged last, once both are done.
build_all() {
	local bg="" r
	if ! "$LAB_DIR/image.sh" --check k3s; then
		set -m # its own process group, so that an interrupt can stop the compilers too
		"$LAB_DIR/build-k3s.sh" &
		bg=$!
		set +m
		log "k3s binaries: building in the background (pid $bg)"
		# shellcheck disable=SC2064 # bg is fixed now
		trap "kill -- -$bg 2>/dev/null; exit 130" INT TERM
		# shellcheck disable=SC2064
		trap "kill -- -$bg 2>/dev/null || true" EXIT
	fi
	for r in $RECIPES $(node_deps); do
		"$LAB_DIR/image.sh" "$r"
	done
	if [ -n "$bg" ]; then
		wait "$bg" || die "building the k3s binaries failed (logs: $LAB_CACHE/logs/k3s-binary.log and the other *-binary*.log)"
		trap - INT TERM EXIT
	fi
	"$LAB_DIR/image.sh" k3s
}

case "${1:-build}" in
build)
	t0=$(date +%s)
	"$LAB_DIR/docker.sh"
	: >"$LAB_CACHE/logs/timings.txt"
	build_all
	write_env
	log "all lab images ready in $(( $(date +%s) - t0 ))s"
	if [ -s "$LAB_CACHE/logs/timings.txt" ]; then
		log "per-step timings (s):"; sed 's/^/    /' "$LAB_CACHE/logs/timings.txt" >&2
	fi
	;;
list) all_refs ;;
env) write_env ;;
save)
	out=${2:?usage: images.sh save FILE}
	# shellcheck disable=SC2046
	docker save -o "$out" $(all_refs)
	log "saved $(all_refs | wc -l) images to $out ($(du -h "$out" | cut -f1)); load with: docker load -i $out"
	;;
*) die "usage: images.sh [build|list|save FILE|env]" ;;
esac

#!/usr/bin/env bash
# setup.sh: everything `make e2e` needs before the suite runs.
#   1. a Docker engine that runs privileged containers (scripts/lab/docker.sh);
#   2. images, from one of two sources, recorded in .lab/images.env:
#      official  the released images (rancher/k3s, MetalLB, ...) pulled by Docker and k3s;
#      lab       the offline lab's images, built from source (scripts/lab/images.sh).
#      IMAGES=auto (default) keeps using the lab when it was set up here before, otherwise
#      tries the registry and falls back to the lab when no registry answers.
#   The probe image is always built locally: it is this project's own program.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lab/lib.sh

mode=${IMAGES:-auto}
scripts/lab/docker.sh

official_version=${K3S_VERSION:-v1.31.1+k3s1}
official_image=${K3S_IMAGE:-rancher/k3s:${official_version//+/-}}

use_official() {
	if ! have_image "$official_image"; then
		log "pulling $official_image"
		timeout "${PULL_TIMEOUT:-120}" docker pull -q "$official_image" >/dev/null || return 1
	fi
	scripts/lab/image.sh netprobe
	mkdir -p .lab
	cat >.lab/images.env <<ENV
# Written by scripts/setup.sh; included by the Makefile.
IMAGE_SOURCE=official
K3S_IMAGE=$official_image
K3S_VERSION=$official_version
NETPROBE_IMAGE=$NETPROBE_IMAGE
METALLB_MANIFEST=https://raw.githubusercontent.com/metallb/metallb/$METALLB_MODULE_VERSION/config/manifests/metallb-native.yaml
METALLB_IMAGES=
ENV
	log "using official images ($official_image)"
}

use_lab() { scripts/lab/images.sh build; }

case "$mode" in
official) use_official || die "could not pull $official_image (set IMAGES=lab to build the offline lab instead)" ;;
lab) use_lab ;;
auto)
	if [ -n "${K3S_IMAGE:-}" ] || { [ -n "${K3S_VERSION:-}" ] && [ "$K3S_VERSION" != "$LAB_K3S_VERSION" ]; }; then
		use_official || die "could not get $official_image"
	elif grep -qs '^IMAGE_SOURCE=lab' .lab/images.env; then
		use_lab
	elif use_official; then
		:
	else
		log "no registry answered: building the offline lab (cold: ~45 min on 2 cores, then cached)"
		use_lab
	fi
	;;
*) die "IMAGES=$mode: want auto, lab or official" ;;
esac

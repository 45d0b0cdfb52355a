#!/usr/bin/env bash
# second-image.sh [BASE [DERIVED]]: derives a second node image from the lab's k3s image, so
# that the pre-upgrade validation can rehearse an upgrade with the one k3s version the lab
# builds. The derived image has the same binaries and a distinct image ID: replacing a node's
# container with it goes through every step of a real upgrade (new container, kept state
# volume, k3s restart) without a version change.
#   BASE     default $LAB_K3S_IMAGE (k3snet.local/k3s:v1.31.1-k3snet)
#   DERIVED  default BASE with "-b" appended to its tag
# Cached: nothing is done when DERIVED exists and was made from BASE's current image ID.
. "$(dirname "$0")/lib.sh"

base=${1:-$LAB_K3S_IMAGE}
derived=${2:-${base}-b}
have_image "$base" || die "$base is missing; build it first (make images)"
base_id=$(docker image inspect -f '{{.Id}}' "$base")
if [ "$(image_label "$derived" io.k3snet.lab.base-id)" = "$base_id" ]; then
	log "second image: cached ($derived from $base)"
	exit 0
fi
# The suite reads the k3s version of an image from this label when the tag does not carry it.
version=$(image_label "$base" io.k3snet.k3s.version)
if [ -z "$version" ] && [ "$base" = "$LAB_K3S_IMAGE" ]; then version=$LAB_K3S_VERSION; fi
[ -n "$version" ] || die "$base carries no io.k3snet.k3s.version label; cannot tell which k3s it runs"
printf 'FROM %s\nLABEL io.k3snet.lab.base-id="%s" io.k3snet.k3s.version="%s"\n' "$base" "$base_id" "$version" |
	docker build -q -t "$derived" - >/dev/null
log "second image: $derived ($(docker image inspect -f '{{.Id}}' "$derived" | cut -c8-19)) from $base (${base_id:7:12}), k3s $version"

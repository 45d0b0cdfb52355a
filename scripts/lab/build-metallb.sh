#!/usr/bin/env bash
# build-metallb.sh COMPONENT CONTEXT_DIR: builds one MetalLB component (controller or
# speaker) from its module (no replace directives; the release's version string is compiled
# in, no commit is claimed) and puts the static binary into the build context. Also stores the
# module's metallb-native.yaml, unchanged, as
# $LAB_CACHE/manifests/metallb-native-$METALLB_MODULE_VERSION.yaml: the manifest that names
# both images (either recipe writes it; the same file).
. "$(dirname "$0")/lib.sh"
component=${1:?usage: build-metallb.sh controller|speaker CONTEXT_DIR}
ctx=${2:?usage: build-metallb.sh controller|speaker CONTEXT_DIR}
case "$component" in controller | speaker) ;; *) die "unknown MetalLB component $component" ;; esac

src=$(modsrc go.universe.tf/metallb "$METALLB_MODULE_VERSION")
out="$LAB_CACHE/bin/metallb-$METALLB_MODULE_VERSION"
if [ ! -x "$out/$component" ]; then
	mkdir -p "$out"
	(cd "$src" && CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w" \
		-o "$out/$component.tmp" "./$component")
	mv "$out/$component.tmp" "$out/$component"
fi
cp "$out/$component" "$ctx/$component"

mkdir -p "$LAB_CACHE/manifests"
manifest="$LAB_CACHE/manifests/metallb-native-$METALLB_MODULE_VERSION.yaml"
cmp -s "$src/config/manifests/metallb-native.yaml" "$manifest" ||
	cp "$src/config/manifests/metallb-native.yaml" "$manifest"

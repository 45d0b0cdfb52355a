#!/usr/bin/env bash
# Builds MetalLB's controller from its module (no replace directives; the release's version
# string is compiled in, no commit is claimed) and puts the static binary into the build
# context "$1". Also stores the module's metallb-native.yaml, unchanged, as
# $LAB_CACHE/manifests/metallb-native-$METALLB_MODULE_VERSION.yaml: the manifest that names
# these images (both MetalLB recipes write the same file).
. "$(dirname "$0")/../../lib.sh"
ctx=${1:?usage: build.sh CONTEXT_DIR}

src=$(modsrc go.universe.tf/metallb "$METALLB_MODULE_VERSION")
out="$LAB_CACHE/bin/metallb-$METALLB_MODULE_VERSION"
if [ ! -x "$out/controller" ]; then
	mkdir -p "$out"
	(cd "$src" && CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w" \
		-o "$out/controller.tmp" ./controller)
	mv "$out/controller.tmp" "$out/controller"
fi
cp "$out/controller" "$ctx/controller"

mkdir -p "$LAB_CACHE/manifests"
manifest="$LAB_CACHE/manifests/metallb-native-$METALLB_MODULE_VERSION.yaml"
cmp -s "$src/config/manifests/metallb-native.yaml" "$manifest" ||
	cp "$src/config/manifests/metallb-native.yaml" "$manifest"

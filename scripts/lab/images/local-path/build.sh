#!/usr/bin/env bash
# Builds the local-path provisioner from its module and puts the static binary into the
# build context "$1". The module zip keeps only vendor/modules.txt of the repository's vendor
# directory, so the dependencies come from the module proxy (-mod=mod).
. "$(dirname "$0")/../../lib.sh"
ctx=${1:?usage: build.sh CONTEXT_DIR}

out="$LAB_CACHE/bin/local-path-provisioner-$LOCAL_PATH_MODULE_VERSION"
if [ ! -x "$out/local-path-provisioner" ]; then
	src=$(modsrc github.com/rancher/local-path-provisioner "$LOCAL_PATH_MODULE_VERSION")
	mkdir -p "$out"
	(cd "$src" && CGO_ENABLED=0 "$GO" build -mod=mod -trimpath \
		-ldflags "-s -w -X main.VERSION=$LOCAL_PATH_MODULE_VERSION" \
		-o "$out/local-path-provisioner.tmp" .)
	mv "$out/local-path-provisioner.tmp" "$out/local-path-provisioner"
fi
mkdir -p "$ctx/rootfs/usr/bin"
cp "$out/local-path-provisioner" "$ctx/rootfs/usr/bin/local-path-provisioner"

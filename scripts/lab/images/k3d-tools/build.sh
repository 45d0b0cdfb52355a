#!/usr/bin/env bash
# Puts the static k3d-tools binary (scripts/lab/cmd/k3d-tools) into the build context "$1",
# cached under a hash of its source.
. "$(dirname "$0")/../../lib.sh"
ctx=${1:?usage: build.sh CONTEXT_DIR}

src="$REPO_DIR/scripts/lab/cmd/k3d-tools"
out="$LAB_CACHE/bin/k3d-tools-$(find "$src" -type f | sort | xargs cat | sha256sum | cut -c1-12)"
if [ ! -x "$out/k3d-tools" ]; then
	mkdir -p "$out"
	(cd "$REPO_DIR" && CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w" -o "$out/k3d-tools.tmp" ./scripts/lab/cmd/k3d-tools)
	mv "$out/k3d-tools.tmp" "$out/k3d-tools"
fi
# rm is the same binary under another name (a hard link keeps the image at one copy).
mkdir -p "$ctx/rootfs/app" "$ctx/rootfs/bin"
cp "$out/k3d-tools" "$ctx/rootfs/app/k3d-tools"
ln "$ctx/rootfs/app/k3d-tools" "$ctx/rootfs/bin/rm"

#!/usr/bin/env bash
# Puts the static pause binary (scripts/lab/cmd/pause) into the build context "$1". The
# binary is cached under a hash of its source, so only a source change recompiles it.
. "$(dirname "$0")/../../lib.sh"
ctx=${1:?usage: build.sh CONTEXT_DIR}

src="$REPO_DIR/scripts/lab/cmd/pause"
out="$LAB_CACHE/bin/pause-$(find "$src" -type f | sort | xargs cat | sha256sum | cut -c1-12)"
if [ ! -x "$out/pause" ]; then
	mkdir -p "$out"
	(cd "$REPO_DIR" && CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w" -o "$out/pause.tmp" ./scripts/lab/cmd/pause)
	mv "$out/pause.tmp" "$out/pause"
fi
cp "$out/pause" "$ctx/pause"

#!/usr/bin/env bash
# Compiles netprobe into the build context given as $1. The version string is the recipe
# hash image.sh computed, so `netprobe version` names the exact source an image carries.
. "$(dirname "$0")/../../lib.sh"

ctx=${1:?usage: build.sh CONTEXT_DIR}
if [ -n "${NETPROBE_VERSION:-}" ]; then
	ver=$NETPROBE_VERSION
elif [ -n "${LAB_LABEL:-}" ]; then
	ver="lab-${LAB_LABEL#*=}"
else
	ver=dev
fi
cd "$REPO_DIR"
CGO_ENABLED=0 GOOS=linux "$GO" build -trimpath -ldflags "-s -w -X main.version=$ver" -o "$ctx/netprobe" ./fixtures/netprobe

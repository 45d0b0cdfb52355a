# Shared helpers for the offline lab scripts. Sourced, never executed.
# shellcheck shell=bash

set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$LAB_DIR/../.." && pwd)
export REPO_DIR # used by the scripts that source this file
# shellcheck source=versions.env
. "$LAB_DIR/versions.env"

# The cache lives outside the work tree so that a fresh clone (CI) reuses what an earlier
# run built: a k3s build costs ~20 minutes on two cores.
if [ -z "${LAB_CACHE:-}" ]; then
	if [ "$(id -u)" = 0 ]; then LAB_CACHE=/var/cache/k3snet-lab; else LAB_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/k3snet-lab"; fi
fi
export LAB_CACHE
mkdir -p "$LAB_CACHE/bin" "$LAB_CACHE/src" "$LAB_CACHE/logs" "$LAB_CACHE/work"

GO=${GO:-go}
# Compiler flags for a cold build; neither changes a binary:
# - every lab binary is linked with -s -w (no symbol table, no DWARF), so the DWARF the
#   compiler would write into each package's object file is thrown away at link time;
# - on two cores or fewer, -c=1: one back-end goroutine per compile. `go build` already runs
#   a compile per core there, so a second back-end goroutine only adds coordination (a cold
#   CoreDNS build alone: 10-12 % less CPU, two runs each). With more cores Go's default
#   (up to 4) shortens the long compiles that others wait for, so it is kept.
lab_gcflags=-dwarf=false
[ "$(nproc)" -gt 2 ] || lab_gcflags="$lab_gcflags -c=1"
export GOFLAGS=${GOFLAGS:-"-buildvcs=false \"-gcflags=all=$lab_gcflags\""}

log() { printf '[lab %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[lab] ERROR: %s\n' "$*" >&2; exit 1; }

# step NAME CMD...: runs one build step, prints its wall time, keeps its log on failure.
step() {
	local name=$1; shift
	local t0 t1 logf="$LAB_CACHE/logs/$name.log"
	t0=$(date +%s)
	log "$name: start (log: $logf)"
	if ! "$@" >"$logf" 2>&1; then
		tail -n 40 "$logf" >&2
		die "$name failed after $(( $(date +%s) - t0 ))s; full log: $logf"
	fi
	t1=$(date +%s)
	log "$name: done in $(( t1 - t0 ))s"
	echo "$name $(( t1 - t0 ))" >>"$LAB_CACHE/logs/timings.txt"
}

# moddir MODULE[@VERSION] [MAIN_MODULE_DIR]: prints the module's directory in the Go module
# cache (read-only), downloading it first when needed. Without @VERSION: the version the main
# module in MAIN_MODULE_DIR selects, after its replace directives.
moddir() {
	local out dir
	# A failed download exits non-zero with its reason in the JSON's Error field (stdout):
	# keep the output, so that the reason reaches the message instead of a silent exit.
	out=$(cd "${2:-$LAB_CACHE/work}" && GOFLAGS=-mod=mod "$GO" mod download -json "$1" 2>&1) || true
	dir=$(sed -n 's/^\t"Dir": "\(.*\)",$/\1/p' <<<"$out")
	[ -n "$dir" ] || die "go mod download $1 gave no directory: $(sed -n 's/^\t"Error": "\(.*\)"$/\1/p' <<<"$out")"
	echo "$dir"
}

# modcopy DST MODULE[@VERSION] [MAIN_MODULE_DIR]: prints DST, a writable copy of the module's
# source (found as moddir finds it), made once.
modcopy() {
	local dst=$1 dir; shift
	if [ ! -f "$dst/.complete" ]; then
		dir=$(moddir "$@")
		rm -rf "$dst"; cp -r "$dir" "$dst"; chmod -R u+w "$dst"; touch "$dst/.complete"
	fi
	echo "$dst"
}

# modsrc MODULE VERSION: prints a writable copy of a module's source, made once. Builds run
# inside such a copy so that the module's own replace directives apply.
modsrc() { modcopy "$LAB_CACHE/src/$(echo "$1" | tr '/' '_')@$2" "$1@$2"; }

# recipe_hash FILES...: a short hash of the files that define an image, for cache keys.
recipe_hash() { cat "$@" | sha256sum | cut -c1-12; }

have_image() { docker image inspect "$1" >/dev/null 2>&1; }
image_label() { docker image inspect -f "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true; }

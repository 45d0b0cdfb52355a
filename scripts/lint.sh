#!/usr/bin/env bash
# lint.sh: every static check the project runs, locally (`make lint`) and in CI.
#   go vet, gofmt, golangci-lint (.golangci.yml), actionlint (.github/workflows), and on
#   scripts/**/*.sh and .ci/run: ShellCheck and `bash -n`.
# Every check runs even when an earlier one fails, so one run shows all findings; the exit
# status is non-zero when any check reported something.
#
#   scripts/lint.sh          run the checks (installs missing tools first)
#   scripts/lint.sh tools    only install the pinned tools
#
# Tools are pinned to exact versions (the module proxy serves no `@latest`, and a moving
# linter turns a green main red overnight) and installed once into a cache outside the work
# tree, keyed by version, so a fresh clone (CI) reuses them and a second run installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

GOLANGCI_LINT_VERSION=${GOLANGCI_LINT_VERSION:-v2.15.0}
ACTIONLINT_VERSION=${ACTIONLINT_VERSION:-v1.7.12}

GO=${GO:-go}
# The toolchain named by go.mod (or newer) must already be installed: Go may not fetch
# another one here, and a tool silently built by a different toolchain is hard to debug.
export GOTOOLCHAIN=local
# Two cores are shared with long image builds: linting must not starve them.
NICE=(nice -n 10)

# Same cache root as the offline lab (scripts/lab/lib.sh), so one directory holds every
# build product that outlives a clone.
if [ -z "${LAB_CACHE:-}" ]; then
	if [ "$(id -u)" = 0 ]; then LAB_CACHE=/var/cache/k3snet-lab; else LAB_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/k3snet-lab"; fi
fi
TOOLS_DIR="$LAB_CACHE/tools"

log() { printf '[lint %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# install_go_tool NAME PACKAGE VERSION: prints the path of NAME built from PACKAGE@VERSION,
# building it only when the cache lacks it. The binary is moved into place only once it is
# complete, so an interrupted install is retried rather than trusted.
install_go_tool() {
	local name=$1 pkg=$2 version=$3
	local dir="$TOOLS_DIR/$name-$version" t0 tmp
	if [ ! -x "$dir/$name" ]; then
		t0=$(date +%s)
		log "installing $pkg@$version into $dir"
		mkdir -p "$TOOLS_DIR"
		tmp=$(mktemp -d "$TOOLS_DIR/.install-$name.XXXXXX")
		# GOFLAGS from the caller (e.g. -mod=vendor) must not leak into a foreign module.
		if ! GOBIN="$tmp" GOFLAGS=-buildvcs=false "${NICE[@]}" "$GO" install "$pkg@$version" >&2; then
			rm -rf "$tmp"
			return 1
		fi
		mkdir -p "$dir"
		mv -f "$tmp/$name" "$dir/$name"
		rm -rf "$tmp"
		log "installed $name $version in $(( $(date +%s) - t0 ))s"
	fi
	echo "$dir/$name"
}

# ShellCheck is a Debian package, not a Go module: install it when root, else run without it.
find_shellcheck() {
	if ! command -v shellcheck >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		log "installing shellcheck (Debian package)"
		# An old or missing package list makes the first try fail; refresh it once then.
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null 2>&1 ||
			{ apt-get update -qq >/dev/null 2>&1 &&
				DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null 2>&1; } ||
			log "could not install shellcheck"
	fi
	command -v shellcheck 2>/dev/null || true
}

GOLANGCI_LINT=$(install_go_tool golangci-lint github.com/golangci/golangci-lint/v2/cmd/golangci-lint "$GOLANGCI_LINT_VERSION")
ACTIONLINT=$(install_go_tool actionlint github.com/rhysd/actionlint/cmd/actionlint "$ACTIONLINT_VERSION")
SHELLCHECK=$(find_shellcheck)
[ "${1:-}" = tools ] && exit 0

# Files are found with find rather than from the VCS index so that new, not yet added files
# are checked too; build outputs and caches are skipped.
list_files() {
	find . \( -path ./.git -o -path ./_artifacts -o -path ./.lab -o -path ./bin -o -path ./vendor \) -prune \
		-o -type f \( "$@" \) -print | sed 's|^\./||' | sort
}
mapfile -t GO_FILES < <(list_files -name '*.go')
mapfile -t SH_FILES < <(list_files -name '*.sh'; echo .ci/run)
# Named explicitly: actionlint's own discovery needs a .git directory, which an exported
# tree lacks.
mapfile -t WORKFLOWS < <(find .github/workflows -maxdepth 1 -type f \( -name '*.yml' -o -name '*.yaml' \) 2>/dev/null | sort)

failed=()
# check NAME CMD...: prints the command, runs it, records a failure without stopping.
check() {
	local name=$1 t0 rc=0 shown; shift
	# Long file lists are cut: the command matters, not the hundredth file name.
	if [ "$#" -gt 8 ]; then shown="${*:1:6} ... (+$(( $# - 6 )) more)"; else shown="$*"; fi
	printf '\n==> %s: %s\n' "$name" "$shown"
	t0=$(date +%s)
	"$@" || rc=$?
	if [ "$rc" = 0 ]; then
		printf '<== %s: ok (%ss)\n' "$name" "$(( $(date +%s) - t0 ))"
	else
		printf '<== %s: FAILED (exit %s, %ss)\n' "$name" "$rc" "$(( $(date +%s) - t0 ))"
		failed+=("$name")
	fi
}

# gofmt -l exits 0 even when files need formatting; its output is the finding.
gofmt_check() {
	local out
	[ "$#" -gt 0 ] || return 0 # gofmt with no file reads standard input
	out=$(gofmt -l "$@")
	[ -z "$out" ] && return 0
	echo "not gofmt-formatted (run gofmt -w on them):"
	echo "$out"
	return 1
}

bash_syntax() {
	local f rc=0
	for f in "$@"; do bash -n "$f" || rc=1; done
	return "$rc"
}

check "go vet" "${NICE[@]}" "$GO" vet ./...
check "gofmt" gofmt_check "${GO_FILES[@]}"
check "golangci-lint $GOLANGCI_LINT_VERSION" "${NICE[@]}" "$GOLANGCI_LINT" run --config .golangci.yml ./...
# actionlint checks the shell of `run:` steps with shellcheck when it is given one.
if [ "${#WORKFLOWS[@]}" -eq 0 ]; then
	log "no workflows in .github/workflows: skipping actionlint"
else
	check "actionlint $ACTIONLINT_VERSION" "$ACTIONLINT" -shellcheck="$SHELLCHECK" "${WORKFLOWS[@]}"
fi
if [ -n "$SHELLCHECK" ]; then
	# -x -P SCRIPTDIR: follow `. lib.sh` relative to each script, as the scripts do at run time.
	check "shellcheck $("$SHELLCHECK" --version | sed -n 's/^version: //p')" \
		"$SHELLCHECK" -x -P SCRIPTDIR -f gcc "${SH_FILES[@]}"
else
	log "shellcheck not available: skipping it, and actionlint runs without shell checks"
fi
check "bash -n" bash_syntax "${SH_FILES[@]}"

echo
if [ "${#failed[@]}" -gt 0 ]; then
	echo "lint: FAILED: ${failed[*]}"
	exit 1
fi
echo "lint: all checks passed"

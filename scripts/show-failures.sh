#!/usr/bin/env bash
# show-failures.sh SUMMARY: prints the failure sections of a run's summary.md, so the last
# lines of a failed `make e2e` say what failed and where its diagnostics are, not only
# where in the code (Ginkgo's closing summary gives locations without messages).
set -euo pipefail
summary=${1:?usage: show-failures.sh path/to/summary.md}
if [ ! -f "$summary" ]; then
	echo "no $summary: the run ended before its report was written" >&2
	exit 0
fi
{
	echo
	echo "==== failures, from $summary ===="
	awk '/^### (Failures|Suite-level failures)$/ {on=1; next} /^#/ {on=0} on && NF' "$summary"
} >&2

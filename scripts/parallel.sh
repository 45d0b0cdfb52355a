#!/usr/bin/env bash
# Prints the number of profile clusters `make e2e` runs at once when PARALLEL is not set:
# as many as the memory available now holds at CLUSTER_MIB each, but no more than the CPU
# count, and at least one.
#
# CLUSTER_MIB (default 2048) is about twice a 1-server/2-agent cluster's measured peak:
# two clusters at once (probes running, or MetalLB) took the machine from 1.0 to 3.2 GiB
# used, 1.1 GiB each. The CPU cap is there because the suite measures time (DNS p99,
# failover, perf): with more busy clusters than cores those figures measure the scheduler,
# not the network.
set -euo pipefail

per_cluster=${CLUSTER_MIB:-2048}
avail_mib=$(awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo 2>/dev/null || echo 0)
cpus=$(nproc 2>/dev/null || echo 1)

n=$(( avail_mib / per_cluster ))
if (( n > cpus )); then n=$cpus; fi
if (( n < 1 )); then n=1; fi
echo "$n"

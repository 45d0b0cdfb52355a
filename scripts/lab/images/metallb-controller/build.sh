#!/usr/bin/env bash
# MetalLB controller: see ../../build-metallb.sh (shared with the other MetalLB recipe).
exec "$(dirname "$0")/../../build-metallb.sh" controller "${1:?usage: build.sh CONTEXT_DIR}"

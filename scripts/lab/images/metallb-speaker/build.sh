#!/usr/bin/env bash
# MetalLB speaker: see ../../build-metallb.sh (shared with the other MetalLB recipe).
exec "$(dirname "$0")/../../build-metallb.sh" speaker "${1:?usage: build.sh CONTEXT_DIR}"

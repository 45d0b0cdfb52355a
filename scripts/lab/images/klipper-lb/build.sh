#!/usr/bin/env bash
# Puts the entry script into the build context "$1".
. "$(dirname "$0")/../../lib.sh"
cp "$LAB_DIR/images/klipper-lb/entry" "${1:?usage: build.sh CONTEXT_DIR}/entry"

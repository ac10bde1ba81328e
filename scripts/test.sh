#!/usr/bin/env bash
# The whole test suite: the main module, then the compat module, which
# drives a real Coffer server with the official Vault and AWS clients.
# COFFER_TEST_RACE=1 (CI sets it) runs the main module with the race detector.
set -euo pipefail
cd "$(dirname "$0")/.."
race=()
if [ "${COFFER_TEST_RACE:-}" = 1 ]; then race=(-race); fi
go test "${race[@]}" ./...
# -count=1: go test's cache cannot see changes in the parent module's code.
(cd compat && go test -count=1 ./...)

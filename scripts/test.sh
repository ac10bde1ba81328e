#!/usr/bin/env bash
# The whole test suite: the main module, then the compat module, which
# drives a real Coffer server with the official Vault and AWS clients.
set -euo pipefail
cd "$(dirname "$0")/.."
go test ./...
# -count=1: go test's cache cannot see changes in the parent module's code.
(cd compat && go test -count=1 ./...)

#!/usr/bin/env bash
# The test command: installs the real servers the tests start (Dovecot, an S3 server) if missing,
# then runs the whole suite. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
cargo test --locked "$@"

#!/usr/bin/env bash
# The README's test command: everything a fresh machine needs, then every test.
# Release mode: the property tests walk trees up to 10^6 leaves and the crash tests
# drive the real binary; both are far faster optimised.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --workspace --all-targets

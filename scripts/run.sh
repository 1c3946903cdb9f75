#!/usr/bin/env bash
# The README's run command: build, then start `urna serve` on the embedded default config
# (config/urna.toml). On first start it creates ./data: a self-signed certificate, the log
# key, and a demo election of 1000 voters (roll + their secret keys, for the simulator).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace
exec ./target/release/urna serve --config config/urna.toml "$@"

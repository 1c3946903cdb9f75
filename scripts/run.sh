#!/usr/bin/env bash
# The README's run command: build, then start `urna serve` on the embedded default config
# (config/urna.toml). On first start it creates ./data: a self-signed certificate, the log
# key, and a demo election of 1000 voters (roll + their secret keys, for the simulator).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace
# Where cargo put the binary: $CARGO_TARGET_DIR, a configured build.target-dir, or ./target.
target_dir=$(cargo metadata --format-version 1 --no-deps |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
if [ ! -x "$target_dir/release/urna" ]; then
  echo "error: cargo built no urna under '$target_dir/release'" >&2
  exit 1
fi
exec "$target_dir/release/urna" serve --config config/urna.toml "$@"

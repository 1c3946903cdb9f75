#!/usr/bin/env bash
# Checks deploy/urna.service with `systemd-analyze verify` (CI runs it): any warning fails.
# The unit's ExecStart names /usr/local/bin/urna, which verify requires to exist, so a copy
# pointing at the binary just built is checked. Without systemd-analyze, says so and passes.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v systemd-analyze >/dev/null; then
  echo "note: systemd-analyze not found; deploy/urna.service not checked"
  exit 0
fi
target_dir=$(cargo metadata --format-version 1 --no-deps |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin="$target_dir/release/urna"
if [ ! -x "$bin" ]; then
  echo "error: $bin not built (cargo build --release first)" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s#/usr/local/bin/urna#$bin#g" deploy/urna.service >"$tmp/urna.service"
out=$(systemd-analyze verify "$tmp/urna.service" 2>&1) || {
  echo "$out" >&2
  exit 1
}
if [ -n "$out" ]; then
  echo "$out" >&2
  echo "error: systemd-analyze verify warned about deploy/urna.service" >&2
  exit 1
fi
echo "deploy/urna.service: systemd-analyze verify passed"
# The exposure score, for the record (--offline needs systemd >= 250).
systemd-analyze security --offline=true "$tmp/urna.service" 2>/dev/null | tail -n 1 || true

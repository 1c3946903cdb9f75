#!/usr/bin/env bash
# Durable ballots/s with a same-run baseline: the real server (`urna serve`) and the edge alone
# in front of a backend that answers 201 at once (examples/edge_target: same TLS, HTTP and
# limits, no signature, no log), the same urna-sim scenario against each, alternating ROUNDS
# times. The baseline is the ceiling that TLS, HTTP and the co-located generator leave; the
# gap to it is what the ballot pipeline costs.
# Usage: load-tests/throughput-ab.sh [ROUNDS] [SCENARIO]
# Needs: cargo build --release --workspace --examples
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}; scenario=${2:-load-tests/scenarios/throughput.toml}
config=load-tests/configs/throughput.toml
stop() { pkill -f "urna serve --config $config" || true; pkill -f "edge_target $config" || true; sleep 1; }
trap stop EXIT
for r in $(seq 1 "$rounds"); do
  for target in urna edge-only; do
    stop
    if [ $target = urna ]; then ./target/release/urna serve --config $config >/tmp/urna-ab-server.log 2>&1 &
    else ./target/release/examples/edge_target $config >/tmp/urna-ab-server.log 2>&1 & fi
    for _ in $(seq 1 120); do
      curl -sk -o /dev/null -w '%{http_code}' https://127.0.0.1:28443/readyz 2>/dev/null | grep -q 200 && break
      sleep 0.5
    done
    echo "round $r $target: $(./target/release/urna-sim run "$scenario" 2>&1 | head -3 | tr '\n' ' ' | sed 's/  */ /g')"
  done
done

#!/usr/bin/env bash
# Durable ballots/s with a same-run baseline, the same urna-sim scenario against each side,
# alternating ROUNDS times. Two modes:
# - default: the real server (`urna serve`) against the edge alone in front of a backend that
#   answers 201 at once (examples/edge_target: same TLS, HTTP and limits, no signature, no
#   log). The baseline is the ceiling that TLS, HTTP and the co-located generator leave; the
#   gap to it is what the ballot pipeline costs.
# - BASELINE_BIN=<another urna binary>: two server builds against each other (this is how a
#   change to the server is measured: build the old commit, copy its binary aside, rebuild).
# Every run starts on an empty log (the roll, voters file, certificate and log key are kept),
# so a run never pays for the entries an earlier one left behind.
# Usage: [URNA_BIN=...] [BASELINE_BIN=...] load-tests/throughput-ab.sh [ROUNDS] [SCENARIO]
# Needs: cargo build --release --workspace --examples
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}; scenario=${2:-load-tests/scenarios/throughput.toml}
config=load-tests/configs/throughput.toml
urna=${URNA_BIN:-./target/release/urna}
baseline=${BASELINE_BIN:-}
if [ -n "$baseline" ]; then other=baseline; else other=edge-only; fi
storage=$(sed -n 's/^dir = "\(.*\)"/\1/p' "$config" | head -1)
url=$(sed -n 's/^listen = "\(.*\)"/https:\/\/\1/p' "$config" | head -1)
server=
# Stop only the server this script started, and wait until its port is free.
stop() { if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; server=; fi; }
trap stop EXIT
for r in $(seq 1 "$rounds"); do
  for target in urna "$other"; do
    stop
    rm -rf "$storage/log" "$storage/final-checkpoint"
    case $target in
      urna) "$urna" serve --config $config >/tmp/urna-ab-server.log 2>&1 & ;;
      baseline) "$baseline" serve --config $config >/tmp/urna-ab-server.log 2>&1 & ;;
      edge-only) ./target/release/examples/edge_target $config >/tmp/urna-ab-server.log 2>&1 & ;;
    esac
    server=$!
    # Bounded: 60 s to start (the first start also generates the roll).
    for _ in $(seq 1 120); do
      curl -sk -o /dev/null -w '%{http_code}' "$url/readyz" 2>/dev/null | grep -q 200 && break
      sleep 0.5
    done
    echo "round $r $target: $(./target/release/urna-sim run "$scenario" 2>&1 | head -3 | tr '\n' ' ' | sed 's/  */ /g')"
  done
done

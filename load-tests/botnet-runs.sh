#!/usr/bin/env bash
# The botnet scenarios, one server per scenario: each starts `urna serve` on the shipped
# default config (config/urna.toml: its limits untouched; its demo election in a fresh
# directory under $WORK, so every run starts on an empty log and 1,000 new voters), runs
# load-tests/scenarios/botnet-<kind>.toml with urna-sim, and prints the voters' outcome,
# the attack's main counts, and the server's peak RSS (VmHWM) and CPU over the run. The
# JSON report of each run goes to load-tests/results/botnet-<kind>.json (its HTML beside
# it, with the server's RSS and CPU each second), and each run ends with the closing audit
# of the log (urna-sim exits 4 if it fails).
# Usage: [URNA_CONFIG=file] [WORK=dir] [PORT=n] [SET=attack] [DURATION_S=n] load-tests/botnet-runs.sh [kind ...]
# (default: every kind, then all together; URNA_CONFIG: another config whose paths say
# ./data, for trying a limit; WORK: where the runs' data go, default /tmp/urna-botnet-runs;
# PORT: the server's port, default 8443, for a machine where that one is taken; SET=attack
# runs load-tests/scenarios/attack-<kind>.toml instead, e.g. `SET=attack ... replay`;
# DURATION_S: shorter runs than the scenarios' own)
# Needs: cargo build --release --workspace; run from anywhere; loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${URNA_BIN:-./target/release/urna}
sim=${SIM_BIN:-./target/release/urna-sim}
kinds=("$@")
set_=${SET:-botnet}
[ ${#kinds[@]} -eq 0 ] && [ "$set_" = botnet ] && kinds=(idle-tcp tls-stall idle-keepalive handshake-flood slowloris flood slow-body slow-read all)
[ ${#kinds[@]} -eq 0 ] && kinds=(read-flood oversize-body header-bomb malformed-json replay h2-frames)
# Both processes hold thousands of sockets; root may raise the hard limit too.
ulimit -Hn 65536 2>/dev/null || true
ulimit -n "$(ulimit -Hn)"
hz=$(getconf CLK_TCK)
work=${WORK:-/tmp/urna-botnet-runs}
port=${PORT:-8443}
duration=()
[ -n "${DURATION_S:-}" ] && duration=(--duration-s "$DURATION_S")
for kind in "${kinds[@]}"; do
  dir="$work/$kind"
  out="load-tests/results/$set_-$kind"
  rm -rf "$dir" && mkdir -p "$dir"
  sed -e "s|\./data|$dir/data|g" -e "s|127\.0\.0\.1:8443|127.0.0.1:$port|" \
    "${URNA_CONFIG:-config/urna.toml}" > "$dir/urna.toml"
  $bin serve --config "$dir/urna.toml" > "$out.server.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 200); do
    curl -sk --max-time 1 https://127.0.0.1:$port/healthz > /dev/null && break
    kill -0 $pid 2>/dev/null || { echo "$kind: the server did not start:"; tail -3 "$out.server.log"; exit 1; }
    sleep 0.1
  done
  cpu0=$(awk '{print $14+$15}' /proc/$pid/stat)
  $sim run "load-tests/scenarios/$set_-$kind.toml" --json "$out.json" \
    --html "$out.html" --server-pid $pid --target 127.0.0.1:$port \
    --ca "$dir/data/tls/cert.pem" --voters "$dir/data/voters.jsonl" --roll "$dir/data/roll.txt" \
    "${duration[@]}" \
    > "$out.txt" 2>&1 || echo "urna-sim exited $?" >> "$out.txt"
  cpu1=$(awk '{print $14+$15}' /proc/$pid/stat)
  rss_kb=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
  curl -sk --max-time 5 https://127.0.0.1:$port/metrics > "$out.metrics" || true
  kill -TERM $pid; wait $pid || true
  jq -r --arg kind "$kind" --arg rss "$rss_kb" --arg cpu "$(( (cpu1 - cpu0) * 1000 / hz ))" '
    . as $r | (.tasks[] | select(.arrivals) | .arrivals) as $a
    | "\($kind): voters \($a.arrived) arrived, \($a.accepted_pct)% accepted, \($a.accepted_first_try_pct)% first try, p50 \($a.latency_from_arrival.p50_ms // "-") ms, p99 \($a.latency_from_arrival.p99_ms // "-") ms, max \($a.latency_from_arrival.max_ms // "-") ms; server peak RSS \(($rss|tonumber)/1024|floor) MiB, CPU \($cpu) ms; audit passed: \($r.audit.passed | tostring)"' \
    "$out.json" || cat "$out.txt"
done

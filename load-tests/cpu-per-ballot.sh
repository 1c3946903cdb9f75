#!/usr/bin/env bash
# Where a durable ballot's CPU goes: one closed-loop run of a scenario against `urna serve`,
# with the CPU time (utime + stime from /proc) of each of the server's thread groups
# (tokio-rt-worker = TLS, HTTP, parse, receipt; urna-verify-* = signatures; urna-log-writer =
# group commit) and of urna-sim, read over the counted window and divided by the answers
# counted. On a machine where both share the cores, 1 / (the sum) is the ceiling.
# Usage: [URNA_BIN=...] load-tests/cpu-per-ballot.sh [SCENARIO] [CONFIG] [FROM_S] [TO_S]
#   URNA_BIN: the server binary (default ./target/release/urna); alternate two builds to
#   compare them.
#   FROM_S/TO_S: seconds after urna-sim starts (default 10 and 18: after pre-signing 500k
#   ballots, the settle and the warm-up; inside the 10 s counted).
# Needs: cargo build --release --workspace
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:-load-tests/scenarios/throughput.toml}
config=${2:-load-tests/configs/throughput.toml}
from=${3:-10}; to=${4:-18}
url=$(sed -n 's/^listen = "\(.*\)"/https:\/\/\1/p' "$config" | head -1)
tick=$(getconf CLK_TCK)
server=; sim=
cleanup() { [ -n "$sim" ] && kill "$sim" 2>/dev/null || true; [ -n "$server" ] && kill "$server" 2>/dev/null || true; }
trap cleanup EXIT
# Each run on an empty log, as in throughput-ab.sh (roll, voters and keys are kept).
storage=$(sed -n 's/^dir = "\(.*\)"/\1/p' "$config" | head -1)
rm -rf "$storage/log" "$storage/final-checkpoint"
"${URNA_BIN:-./target/release/urna}" serve --config "$config" >/tmp/urna-cpu-server.log 2>&1 &
server=$!
# Bounded: 60 s for the log to open.
for _ in $(seq 1 120); do
  curl -sk -o /dev/null -w '%{http_code}' "$url/readyz" 2>/dev/null | grep -q 200 && break
  sleep 0.5
done
# Per thread name: summed CPU ticks of the server's threads (the verify threads are one group).
threads() {
  for t in /proc/"$server"/task/*; do
    echo "$(sed 's/-[0-9]*$//' "$t/comm") $(awk '{print $14 + $15}' "$t/stat")"
  done | awk '{a[$1] += $2} END {for (k in a) print k, a[k]}'
}
ticks() { awk '{print $14 + $15}' /proc/"$1"/stat; }
./target/release/urna-sim run "$scenario" >/tmp/urna-cpu-sim.out 2>&1 &
sim=$!
sleep "$from"; threads >/tmp/urna-cpu-0; s0=$(ticks "$sim"); t0=$(date +%s.%N)
sleep $((to - from)); threads >/tmp/urna-cpu-1; s1=$(ticks "$sim"); t1=$(date +%s.%N)
wait "$sim"; sim=
rate=$(sed -n 's/.*2xx \([0-9]*\)\/s.*/\1/p' /tmp/urna-cpu-sim.out | head -1)
head -1 /tmp/urna-cpu-sim.out
join /tmp/urna-cpu-0 /tmp/urna-cpu-1 | awk -v r="$rate" -v tk="$tick" -v dt="$(echo "$t1 $t0" | awk '{print $1 - $2}')" \
  -v s="$((s1 - s0))" '
  { cpu = ($3 - $2) / tk / dt; tot += cpu
    if (cpu > 0.005) printf "  %-16s %5.0f%% of a core  %5.1f µs/ballot\n", $1, 100 * cpu, 1e6 * cpu / r }
  END { printf "  %-16s %5.0f%% of a core  %5.1f µs/ballot\n", "server", 100 * tot, 1e6 * tot / r
        g = s / tk / dt
        printf "  %-16s %5.0f%% of a core  %5.1f µs/ballot\n", "urna-sim", 100 * g, 1e6 * g / r
        printf "  2 cores doing only this: %.1fk ballots/s\n", 2 / ((tot + g) / r) / 1000 }'

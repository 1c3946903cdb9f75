#!/usr/bin/env bash
# 429s for one source far past its limit: Urna (`urna serve` or examples/edge_target) against
# nginx limit_req, and against nginx answering 429 with no limiter at all (the ceiling that
# the load generator allows), the same wrk command against each, alternating, ROUNDS times.
# Prints for each run the 429 rate and the server CPU time per 1000 answers (utime+stime of
# the server processes, from /proc), which is steadier than throughput on a shared machine,
# and per 1000 attempts: answers plus wrk's socket errors. Once Urna's penalty box holds the
# source, its connection is closed and every reconnect is reset at accept: wrk then counts
# errors, not answers, and "attempts" is what the hostile source asked of the server.
# Since Urna's penalty box also drops a boxed source's SYNs in the kernel (a socket filter),
# whose cost is softirq time charged to no process, each run also prints the whole
# machine's busy CPU (/proc/stat) less wrk's own (GNU time): the server's processes plus
# the kernel work on the hostile traffic, idle tenants aside.
# Usage: load-tests/nginx/compare.sh URNA_PID "NGINX_WORKER_PIDS" [ROUNDS] [SECONDS]
set -euo pipefail
urna_pid=$1; nginx_pids=$2; rounds=${3:-3}; secs=${4:-10}
cd "$(dirname "$0")/../.."
ticks() { local t=0; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' /proc/$p/stat))); done; echo $t; }
hz=$(getconf CLK_TCK)
busy() { awk '/^cpu / {print $2+$3+$4+$7+$8+$9}' /proc/stat; }
for r in $(seq 1 "$rounds"); do
  for target in urna nginx ceiling; do
    case $target in
      urna) port=18443; pids=$urna_pid ;;
      nginx) port=18444; pids=$nginx_pids ;;
      ceiling) port=18445; pids=$nginx_pids ;;
    esac
    before=$(ticks $pids); busy0=$(busy)
    out=$(/usr/bin/time -f "wrk-cpu %e %U %S" wrk -t1 -c32 -d${secs}s -s load-tests/nginx/ballot.lua https://127.0.0.1:$port/v1/ballots 2>&1)
    after=$(ticks $pids); busy1=$(busy)
    wrk_ms=$(echo "$out" | awk '/^wrk-cpu/ {printf "%d", ($3+$4)*1000}')
    rest_ms=$(( (busy1 - busy0) * 1000 / hz - ${wrk_ms:-0} ))
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5}')
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    cpu_ms=$(( (after - before) * 1000 / hz ))
    answers=$(echo "$out" | awk '/requests in/ {print $1}')
    errors=$(echo "$out" | awk '/Socket errors/ {gsub(",", ""); print $4+$6+$8+$10}')
    attempts=$(( ${answers:-0} + ${errors:-0} ))
    echo "round $r $target: requests/s $rps, non-2xx ${non2xx:-0}, socket errors ${errors:-0}, server cpu ${cpu_ms} ms, cpu per 1000 answers $(awk -v c=$cpu_ms -v n=${non2xx:-1} 'BEGIN{printf "%.1f ms", c*1000/n}'), per 1000 attempts $(awk -v c=$cpu_ms -v n=$attempts 'BEGIN{printf "%.2f ms", c*1000/(n>0?n:1)}'), machine cpu less wrk ${rest_ms} ms (wrk ${wrk_ms:-?} ms)"
  done
done

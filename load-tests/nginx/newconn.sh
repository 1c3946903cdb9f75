#!/usr/bin/env bash
# New TLS connections/s: `urna serve` against nginx, the same wrk command against each
# (`wrk -t1 -c32 -d${SECS}s -H "Connection: close" https://127.0.0.1:<port>/healthz`: every
# request on a new connection), alternating, ROUNDS times, with and without resumption,
# TLS 1.3 on both. Prints connections/s and the server's CPU per 1000 connections
# (utime+stime from /proc over the run), steadier than throughput on a shared machine.
# Usage: load-tests/nginx/newconn.sh URNA_RESUME_PID URNA_NORESUME_PID "NGINX_WORKER_PIDS" [ROUNDS] [SECS]
# Ports: urna 18448 (tickets) and 18449 (no tickets), nginx 18446 (tickets) and 18447 (none).
set -euo pipefail
urna_on=$1; urna_off=$2; nginx_pids=$3; rounds=${4:-3}; secs=${5:-5}
ticks() { local t=0; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' /proc/$p/stat))); done; echo $t; }
hz=$(getconf CLK_TCK)
for r in $(seq 1 "$rounds"); do
  for target in urna-resume nginx-resume urna-full nginx-full; do
    case $target in
      urna-resume) port=18448; pids=$urna_on ;;
      nginx-resume) port=18446; pids=$nginx_pids ;;
      urna-full) port=18449; pids=$urna_off ;;
      nginx-full) port=18447; pids=$nginx_pids ;;
    esac
    before=$(ticks $pids)
    out=$(wrk -t1 -c32 -d${secs}s -H "Connection: close" https://127.0.0.1:$port/healthz)
    after=$(ticks $pids)
    n=$(echo "$out" | awk '/requests in/ {print $1}')
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    errs=$(echo "$out" | awk '/Socket errors/ {print $0}')
    cpu_ms=$(( (after - before) * 1000 / hz ))
    echo "round $r $target: connections/s $rps, server cpu ${cpu_ms} ms, cpu per 1000 connections $(awk -v c=$cpu_ms -v n=${n:-1} 'BEGIN{printf "%.1f ms", c*1000/n}') ${errs}"
  done
done

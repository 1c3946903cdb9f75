#!/bin/bash
# `urna monitor` against a live server under the simulator's ballots for 70 s (docs/AUDITING.md,
# "What was measured"): the monitor polls every 2 s, is SIGKILLed at 30 s and restarted from
# its state file; at the end one more poll and a full audit. Loopback only; every wait is
# bounded. Run from anywhere after `cargo build --release --workspace`.
set -u
here=$(cd "$(dirname "$0")" && pwd)
bin=${CARGO_TARGET_DIR:-$here/../../target}/release
cd "$here"
rm -rf work && mkdir work
"$bin"/urna serve --config urna.toml > work/serve.out 2> work/serve.err &
serve=$!
trap 'kill $serve 2>/dev/null' EXIT
for _ in $(seq 1 100); do grep -q "https://" work/serve.out 2>/dev/null && break; sleep 0.2; done
sleep 1
mon=("$bin"/urna monitor --url https://127.0.0.1:8643/ --ca work/data/tls/cert.pem
     --vkey work/data/log.vkey --roll work/electorate/roll.txt --state work/monitor.state)
"${mon[@]}" --interval-s 2 > work/mon1.out 2> work/mon1.err &
m1=$!
timeout 100 "$bin"/urna-sim run sim.toml > work/sim.out 2> work/sim.err &
sim=$!
sleep 30
kill -9 $m1; wait $m1 2>/dev/null
echo "monitor SIGKILLed; its state file says size $(python3 -c "import json;print(json.load(open('work/monitor.state'))['checkpoint'].split(chr(10))[1])")"
"${mon[@]}" --interval-s 2 > work/mon2.out 2> work/mon2.err &
m2=$!
wait $sim; echo "urna-sim exit $?"
sleep 5
kill $m2; wait $m2 2>/dev/null
"${mon[@]}" --once > work/mon3.out 2> work/mon3.err; echo "last poll exit $?"
echo "polls verified: $(cat work/mon*.out | grep -c verified); alarms: $(cat work/mon*.err | grep -c ALARM)"
echo "entries checked in all: $(cat work/mon1.out work/mon2.out | grep -o '; [0-9]* new' | grep -o '[0-9]*' | paste -sd+ | bc)"
head -n 1 work/mon2.out
tail -n 3 work/sim.out
"$bin"/urna audit --vkey work/data/log.vkey --roll work/electorate/roll.txt \
    --url https://127.0.0.1:8643/ --ca work/data/tls/cert.pem | head -n 4

#!/usr/bin/env bash
# DreamerV3 1.5.0 against our dv3small, one update each (batch 16x64, float32, the
# same XLA_FLAGS), back to back and alternating, ROUNDS times; prints both medians and
# the ratio. Both sides learn a reward critic and an actor only (ours: --method
# dreamerv3), on a 3-dim observation and a 1-dim action (the peer's Pendulum-v1).
#
#   ../shared/peers/install_dreamerv3.sh PEERDIR          # once: DreamerV3 1.5.0 in PEERDIR/dv3
#   benchmarks/peer_speed.sh PEERDIR [ROUNDS]
#
# DV3_PYTHON and DV3_BENCH point elsewhere (defaults: PEERDIR/dv3/bin/python and
# ../shared/peers/dv3_bench.py); OURS_SIZE picks another size of update_speed.py.
set -euo pipefail
peer=${1:?usage: benchmarks/peer_speed.sh PEERDIR [ROUNDS]}
rounds=${2:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
dv3_python=${DV3_PYTHON:-$peer/dv3/bin/python}
dv3_bench=${DV3_BENCH:-$root/../shared/peers/dv3_bench.py}
ours_size=${OURS_SIZE:-dv3small}
python=${PYTHON:-$root/.venv/bin/python}
[ -x "$dv3_python" ] || { echo "no DreamerV3 python at $dv3_python (run install_dreamerv3.sh $peer)" >&2; exit 2; }
[ -f "$dv3_bench" ] || { echo "no $dv3_bench" >&2; exit 2; }
out=$(mktemp -d)
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); XLA_FLAGS='${XLA_FLAGS:-}'; load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%FT%TZ)"
for i in $(seq "$rounds"); do
  "$dv3_python" "$dv3_bench" --size small --skip_train --bench_updates 5 --precision float32 \
    --logdir "$out/dv3_$i" > "$out/dv3_$i.log" 2>&1 || { tail -5 "$out/dv3_$i.log" >&2; exit 1; }
  grep '^RESULT ' "$out/dv3_$i.log" | cut -d' ' -f2- > "$out/dv3_$i.json"
  "$python" "$root/benchmarks/update_speed.py" --sizes "$ours_size" --method dreamerv3 \
    --obs-dim 3 --act-dim 1 --reps 5 --json "$out/ours_$i.json" > "$out/ours_$i.log" 2>&1 \
    || { tail -5 "$out/ours_$i.log" >&2; exit 1; }
  echo "round $i done, load $(cut -d' ' -f1 /proc/loadavg)"
done
"$python" - "$out" "$rounds" <<'EOF'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
peer = [json.load(open(f'{out}/dv3_{i}.json')) for i in range(1, rounds + 1)]
ours = [json.load(open(f'{out}/ours_{i}.json'))['rows'][0] for i in range(1, rounds + 1)]
p = [r['update_median_s'] for r in peer]
o = [r['update_s'] for r in ours]
print('| program | seconds per update, each round | median | first call (compile) |')
print('| --- | --- | --- | --- |')
print(f"| DreamerV3 1.5.0 small, float32 | {', '.join(f'{x:.4g}' for x in p)} | "
      f"{statistics.median(p):.4g} | {statistics.median(r['first_call_s'] for r in peer):.0f} s |")
print(f"| ours {ours[0]['size']}, dreamerv3 | {', '.join(f'{x:.4g}' for x in o)} | "
      f"{statistics.median(o):.4g} | {statistics.median(r['compile_s'] + r['first_call_s'] for r in ours):.0f} s |")
print(f'ratio (DreamerV3 1.5.0 / ours, medians): {statistics.median(p) / statistics.median(o):.2f}x')
EOF
echo "logs: $out"

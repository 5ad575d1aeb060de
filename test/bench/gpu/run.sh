#!/usr/bin/env bash
# The GPU benchmark on the GPU machine, from the repository root, with .tmp/gpu-pack
# carried (pack.sh). Runs the phases named, in order; each call starts from a bare
# machine, so every call unpacks first (seconds). See README.md beside this file.
#   bash test/bench/gpu/run.sh ceiling agree probe peer peft  # call 1: does it run, how fast
#   STEPS=200 BATCH=8 SEQ=512 bash test/bench/gpu/run.sh engine   # call 2: the timed run
# Phases: ceiling (tfjs-webgpu matMul GFLOP/s), agree (20 steps webgpu vs wasm), probe
# (10 steps of the bench run), engine (STEPS steps), peer (PyTorch bf16 and fp32), peft
# (transformers + PeftModel.from_pretrained on an adapter of ours: peft_check.py).
# Results: $OUT/results.json (one object per phase), $OUT/logs.tar.gz, and a table on stdout.
set -uo pipefail
out=${OUT:-/tmp/qlora-gpu-out}
pack=${QLORA_GPU_PACK:-.tmp/gpu-pack}
work=${QLORA_GPU_WORK:-/tmp/qlora-gpu}
here=$(dirname "$0")
python=${PYTHON:-python3}
mkdir -p "$out" "$work/logs"
export PYTHONUNBUFFERED=1

"$python" - "$pack" "$work" <<'EOF'
import sys, tarfile
pack, work = sys.argv[1:]
for name in ('node.tar.xz', 'app.tar.xz'):
    with tarfile.open(f'{pack}/{name}') as t:
        t.extractall(work)
EOF
node="$work/node/bin/node"
bench=("$node" "$work/app/bench.cjs")
cli="$work/app/dist/cli.js"
export QLORA_DAWN_NODE="$work/app/dawn.node"
for deb in "$pack"/libvulkan1_*.deb; do
  [ -e "$deb" ] && dpkg -x "$deb" "$work/vk" && export LD_LIBRARY_PATH="$work/vk/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
if [ -z "${VK_DRIVER_FILES:-}" ]; then
  for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
    [ -e "$f" ] && export VK_DRIVER_FILES="$f" && break
  done
fi
{
  echo "node $("$node" -v); VK_DRIVER_FILES=${VK_DRIVER_FILES:-unset}"
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv 2>&1
} | tee "$work/logs/machine.txt"

# GPU memory in use every 200 ms while a phase runs: its peak less the idle reading.
idle=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null | head -1)
phase() {
  local name=$1; shift
  echo "=== $name: $*" >&2
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >"$work/logs/$name.smi" 2>/dev/null &
  local smi=$!
  local t0=$SECONDS
  "$@" >"$work/$name.json" 2> >(tee "$work/logs/$name.log" >&2)
  local rc=$?
  kill "$smi" 2>/dev/null; wait "$smi" 2>/dev/null
  local peak; peak=$(sort -n "$work/logs/$name.smi" 2>/dev/null | tail -1)
  "$python" - "$work" "$name" "$rc" "$((SECONDS - t0))" "${idle:-}" "${peak:-}" <<'EOF'
import json, sys
work, name, rc, seconds, idle, peak = sys.argv[1:]
try:
    result = json.load(open(f'{work}/{name}.json'))
except Exception as e:
    result = {'error': f'no JSON ({e})'}
result.update(phase=name, exit=int(rc), seconds=int(seconds))
if idle and peak:
    result['gpuMemoryMiB'] = int(peak) - int(idle)
with open(f'{work}/results.jsonl', 'a') as f:
    f.write(json.dumps(result) + '\n')
EOF
}

run_dir="$work/run"
make_model() {
  [ -e "$run_dir/spec.json" ] || "${bench[@]}" make-model "$run_dir" ${TINY:+--tiny} --steps "${STEPS:-200}" \
    --batch "${BATCH:-8}" --seq "${SEQ:-512}" >"$work/logs/make-model.json"
}
for p in "$@"; do
  case "$p" in
    ceiling) phase ceiling "${bench[@]}" ceiling ;;
    agree) make_model && phase agree "${bench[@]}" agree "$run_dir" --cli "$cli" ;;
    probe)
      make_model && sed -i "s/max_steps: .*/max_steps: 10/" "$run_dir/bench.qlora"
      phase probe "${bench[@]}" engine "$run_dir" --cli "$cli"
      sed -i "s/max_steps: .*/max_steps: ${STEPS:-200}/" "$run_dir/bench.qlora" ;;
    engine) make_model && phase engine "${bench[@]}" engine "$run_dir" --cli "$cli" ;;
    peer)
      make_model
      for dtype in bf16 fp32; do
        phase "peer-$dtype" "$python" "$here/peer_torch_gpu.py" "$run_dir" --dtype "$dtype" ${PEER_DEVICE:+--device "$PEER_DEVICE"}
      done ;;
    peft) phase peft "$python" "$here/peft_check.py" "$pack/peft" ;;
    *) echo "run.sh: unknown phase $p" >&2 ;;
  esac
done

cp "$work/results.jsonl" "$out/results.jsonl" 2>/dev/null
tar -C "$work" -czf "$out/logs.tar.gz" logs
"$python" "$here/summarize.py" "$out/results.jsonl" | tee "$out/summary.md"

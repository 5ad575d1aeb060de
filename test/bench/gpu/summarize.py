"""The GPU benchmark's table from one or more results.jsonl files (run.sh writes one per
call; later phases of the same name win). Prints Markdown.
Usage: python3 summarize.py results.jsonl [more.jsonl ...]"""
import json, sys


def load(paths):
    phases = {}
    for path in paths:
        for line in open(path):
            if line.strip():
                r = json.loads(line)
                phases[r["phase"]] = r
    return phases


def fmt(x, digits=1):
    return "-" if x is None else f"{x:,.{digits}f}"


def main(paths):
    p = load(paths)
    lines = []
    ceiling = p.get("ceiling", {})
    webgpu_ceiling = (ceiling.get("float32Gflops") or {}).get("4096")
    peers = {k: v for k, v in p.items() if k.startswith("peer-") and "tokensPerSec" in v}
    cublas_fp32 = next((v["matmulTflops"]["fp32"] for v in peers.values()), None)
    cublas_bf16 = next((v["matmulTflops"]["bf16"] for v in peers.values()), None)
    lines.append("## Ceilings (square matMul, n = 4096)")
    lines.append(f"- tfjs-webgpu float32: {fmt(webgpu_ceiling and webgpu_ceiling / 1000, 2)} TFLOP/s on {ceiling.get('device', '-')}")
    lines.append(f"- PyTorch (cuBLAS): float32 {fmt(cublas_fp32, 2)} TFLOP/s, bf16 {fmt(cublas_bf16, 2)} TFLOP/s")
    agree = p.get("agree")
    if agree:
        verdict = "PASS" if agree.get("pass") else "FAIL"
        lines.append(f"\n## Loss agreement, webgpu vs wasm: {verdict}")
        lines.append(f"- {agree.get('steps')} steps, largest relative difference {agree.get('largestRelativeDifference', float('nan')):.2e} "
                     f"(tolerance {agree.get('tolerance')}); {agree.get('error', '')}")
    lines.append("\n## Training throughput (same model, batch and sequence)")
    lines.append("| run | steps | batch x seq | tokens/s | ms/step | model TFLOP/s | of its matMul ceiling | of cuBLAS fp32 | GPU memory MiB |")
    lines.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    ours = p.get("engine") or p.get("probe")
    rows = []
    for name in ("probe", "engine"):
        r = p.get(name)
        if r and "tokensPerSec" in r:
            tflops = r.get("achievedTflops")
            rows.append((f"ours, {name} (webgpu, fp32)", r, tflops,
                         tflops and webgpu_ceiling and tflops * 1000 / webgpu_ceiling, tflops and cublas_fp32 and tflops / cublas_fp32))
        elif r:
            lines.append(f"| ours, {name} | failed: exit {r.get('exit')} {r.get('error', '')} | | | | | | | |")
    for name, r in sorted(peers.items()):
        tflops = r.get("achievedTflops")
        own = r["matmulTflops"]["bf16" if r["dtype"] == "bf16" else "fp32"]
        rows.append((f"PyTorch + PEFT, {r['dtype']}", r, tflops, tflops and tflops / own, tflops and cublas_fp32 and tflops / cublas_fp32))
    for label, r, tflops, of_own, of_fp32 in rows:
        lines.append(f"| {label} | {r.get('steps')} | {r.get('batch')} x {r.get('seq')} | {fmt(r.get('tokensPerSec'), 0)} | "
                     f"{fmt(r.get('msPerStep'))} | {fmt(tflops, 2)} | {fmt(of_own and 100 * of_own)}% | {fmt(of_fp32 and 100 * of_fp32)}% | "
                     f"{r.get('gpuMemoryMiB', '-')} |")
    if ours and "tokensPerSec" in ours:
        for name, r in sorted(peers.items()):
            lines.append(f"\nPyTorch {r['dtype']} / ours: {r['tokensPerSec'] / ours['tokensPerSec']:.1f}x tokens/s")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])

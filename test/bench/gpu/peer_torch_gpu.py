"""The PyTorch peer of our engine's GPU benchmark (bench.ts engine): the same Llama shape
(from the run folder's spec.json), NF4 base with double quantization, PEFT LoRA r 16 on
all seven projections, the same batch and sequence, AdamW. bitsandbytes is not on the GPU
machine, so its NF4 layout and dequantize are written here in plain PyTorch; like
bitsandbytes' MatMul4Bit, the backward pass dequantizes again instead of keeping the
float weight. Prints one JSON line.

Usage: python3 peer_torch_gpu.py RUN_DIR --dtype bf16|fp32 [--steps 30] [--batch B] [--seq T]
       [--device cuda]"""
import argparse, json, math, time

import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
BLOCK, NESTED_BLOCK = 64, 256
NF4 = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
       -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
       0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
       0.7229568362236023, 1.0]


def dynamic_map():
    """bitsandbytes' create_dynamic_map(signed=True): the 256 codes of the 8-bit absmax."""
    data = []
    for i in range(7):
        items = 2 ** i + 1
        bounds = torch.linspace(0.1, 1, items)
        means = ((bounds[:-1] + bounds[1:]) / 2.0) * 10 ** (-6 + i)
        data += means.tolist() + (-means).tolist()
    data += [0.0, 1.0]
    data += [0.0] * (256 - len(data))
    return torch.tensor(sorted(data))


class NF4Linear(torch.nn.Linear):
    """A frozen nn.Linear held as NF4 codes (two per byte, high nibble first) and 8-bit
    absmax codes with one float per 256 blocks and an offset: bitsandbytes' layout."""

    def __init__(self, w, compute_dtype):
        torch.nn.Module.__init__(self)
        self.out_features, self.in_features = w.shape
        # PEFT reads the base weight's device and dtype; the float weight itself is dropped.
        self.weight = torch.nn.Parameter(torch.empty(0, device=w.device, dtype=compute_dtype), requires_grad=False)
        self.register_parameter("bias", None)
        levels = torch.tensor(NF4, device=w.device)
        blocks = w.float().reshape(-1, BLOCK)
        absmax = blocks.abs().amax(1)
        codes = torch.empty(blocks.shape, dtype=torch.uint8, device=w.device)
        for s in range(0, blocks.shape[0], 65536):  # bounded temporaries
            x = blocks[s:s + 65536] / absmax[s:s + 65536, None]
            codes[s:s + 65536] = (x.unsqueeze(-1) - levels).abs().argmin(-1).to(torch.uint8)
        flat = codes.reshape(-1, 2)
        self.register_buffer("packed", (flat[:, 0] << 4) | flat[:, 1])
        self.register_buffer("levels", levels)
        self.register_buffer("dmap", dynamic_map().to(w.device))
        self.offset = absmax.mean().item()
        centred = absmax - self.offset
        pad = (-centred.numel()) % NESTED_BLOCK
        nested = torch.nn.functional.pad(centred, (0, pad)).reshape(-1, NESTED_BLOCK)
        self.register_buffer("absmax2", nested.abs().amax(1))
        scaled = (nested / self.absmax2[:, None]).reshape(-1)[:centred.numel()]
        acodes = torch.empty(centred.numel(), dtype=torch.uint8, device=w.device)
        for s in range(0, scaled.numel(), 65536):
            acodes[s:s + 65536] = (scaled[s:s + 65536, None] - self.dmap).abs().argmin(-1).to(torch.uint8)
        self.register_buffer("acodes", acodes)

    def dequantize(self, dtype):
        n = self.acodes.numel()
        absmax = self.dmap[self.acodes.long()] * self.absmax2.repeat_interleave(NESTED_BLOCK)[:n] + self.offset
        idx = torch.stack([self.packed >> 4, self.packed & 15], -1).reshape(-1).long()
        return (self.levels[idx].view(-1, BLOCK) * absmax[:, None]).view(self.out_features, self.in_features).to(dtype)

    def forward(self, x):
        return NF4MatMul.apply(x, self)


class NF4MatMul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, layer):
        ctx.layer = layer
        return x @ layer.dequantize(x.dtype).t()

    @staticmethod
    def backward(ctx, dy):
        return dy @ ctx.layer.dequantize(dy.dtype), None


def step_flops(s, B, T, r):
    """As trainRun.ts stepFlops: frozen projections y and dx, LoRA three times, attention, head y and dx."""
    N, C = B * T, s["dim"]
    kv = C // s["nHeads"] * s["nKvHeads"]
    shapes = [(C, C), (kv, C), (kv, C), (C, C), (s["hiddenDim"], C), (s["hiddenDim"], C), (C, s["hiddenDim"])]
    per_layer = sum(2 * (2 * N * i * o) + 3 * (2 * N * r * (i + o)) for o, i in shapes)
    per_layer += 3 * 2 * (2 * B * s["nHeads"] * T * T * (C // s["nHeads"]))
    return s["nLayers"] * per_layer + 2 * (2 * N * C * s["vocabSize"])


def matmul_tflops(device, dtype, n=4096, reps=10):
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e12


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("run_dir")
    p.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch", type=int)
    p.add_argument("--seq", type=int)
    p.add_argument("--device", default="cuda")
    a = p.parse_args()
    info = json.load(open(f"{a.run_dir}/spec.json"))
    s, B, T = info["spec"], a.batch or info["bench"]["batch"], a.seq or info["bench"]["seq"]
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    torch.manual_seed(0)
    # Plain float32 products in the fp32 variant, as our engine computes (no TF32).
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    cfg = LlamaConfig(vocab_size=s["vocabSize"], hidden_size=s["dim"], intermediate_size=s["hiddenDim"],
                      num_hidden_layers=s["nLayers"], num_attention_heads=s["nHeads"], num_key_value_heads=s["nKvHeads"],
                      max_position_embeddings=s["seqLen"], tie_word_embeddings=True, rms_norm_eps=1e-5)
    with torch.device(a.device):
        model = LlamaForCausalLM(cfg).to(dtype=dtype)
    for layer in model.model.layers:
        for group in (layer.self_attn, layer.mlp):
            for name in PROJECTIONS:
                if hasattr(group, name):
                    setattr(group, name, NF4Linear(getattr(group, name).weight.data, dtype))
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=PROJECTIONS, bias="none"))
    trainable = sum(x.numel() for x in model.parameters() if x.requires_grad)
    opt = torch.optim.AdamW([x for x in model.parameters() if x.requires_grad], lr=2e-4, weight_decay=0.0)
    g = torch.Generator(device="cpu").manual_seed(1)
    ids = torch.randint(3, 500, (B, T), generator=g).to(a.device)

    def step():
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    first = step().item()
    for _ in range(2):
        step()
    sync(a.device)
    if a.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        last = step()
    sync(a.device)
    seconds = (time.perf_counter() - t0) / a.steps
    flops = step_flops(s, B, T, 16)
    out = {
        "peer": f"PyTorch {torch.__version__} + PEFT, NF4 dequantize in plain PyTorch, {a.dtype}",
        "device": torch.cuda.get_device_name() if a.device.startswith("cuda") else a.device,
        "dtype": a.dtype, "batch": B, "seq": T, "steps": a.steps, "trainableParams": trainable,
        "msPerStep": seconds * 1000, "tokensPerSec": B * T / seconds, "firstLoss": first, "lastLoss": last.item(),
        "stepTflop": flops / 1e12, "achievedTflops": flops / seconds / 1e12,
        "matmulTflops": {k: matmul_tflops(a.device, d) for k, d in (("fp32", torch.float32), ("bf16", torch.bfloat16))},
    }
    if a.device.startswith("cuda"):
        out["peakAllocatedBytes"] = torch.cuda.max_memory_allocated()
        out["peakReservedBytes"] = torch.cuda.max_memory_reserved()
    print(json.dumps(out))


if __name__ == "__main__":
    main()

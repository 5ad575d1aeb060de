"""The PyTorch peer of engine.bench.ts: the same Llama layer stack, the same NF4
dequantize (written in plain PyTorch: bitsandbytes is not available here) and LoRA
forward + backward, the same batch and sequence length, on the CPU. Prints one JSON line.
Usage: python3 peer_torch.py LAYERS SEQ BATCH STEPS [--serve]
With --serve it prints {"ready": ...} after the warm-up step, then for every line N read
on stdin runs N steps and prints one JSON line of per-step wall and CPU milliseconds (CPU
time of the whole process, all BLAS threads), so the benchmark can interleave its rounds
with ours."""
import json, math, sys, time
import torch

layers, T, B, steps = (int(a) for a in sys.argv[1:5])
C, NH, HS, H, V, R, BLOCK = 512, 8, 64, 1376, 512, 16, 64
torch.manual_seed(0)

NF4 = torch.tensor([-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
                    -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
                    0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
                    0.7229568362236023, 1.0])


class NF4Weight:
    """Blockwise NF4 with double-quantized absmax (8-bit codes, blocks of 256, an offset)."""
    def __init__(self, w):
        self.shape = w.shape
        flat = w.reshape(-1, BLOCK)
        absmax = flat.abs().amax(1)
        self.codes = (flat / absmax[:, None]).unsqueeze(-1).sub(NF4).abs().argmin(-1).to(torch.uint8)
        self.offset = absmax.mean()
        a = (absmax - self.offset).reshape(-1, 256) if absmax.numel() % 256 == 0 else (absmax - self.offset)[None]
        self.absmax2 = a.abs().amax(1)
        self.acodes = torch.round(a / self.absmax2[:, None] * 127).to(torch.int8)

    def dequantize(self):
        absmax = (self.acodes.float() / 127 * self.absmax2[:, None]).reshape(-1) + self.offset
        return (NF4[self.codes.long()] * absmax[:, None]).reshape(self.shape)


class Linear(torch.nn.Module):
    def __init__(self, out_f, in_f):
        super().__init__()
        self.w = NF4Weight(torch.randn(out_f, in_f) * 0.02)
        self.A = torch.nn.Parameter(torch.empty(R, in_f).uniform_(-1 / math.sqrt(in_f), 1 / math.sqrt(in_f)))
        self.B = torch.nn.Parameter(torch.randn(out_f, R) * 0.01)

    def forward(self, x):
        return x @ self.w.dequantize().t() + (x @ self.A.t() @ self.B.t()) * 2.0


def rms(x, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.q, self.k, self.v, self.o = Linear(C, C), Linear(C, C), Linear(C, C), Linear(C, C)
        self.gate, self.up, self.down = Linear(H, C), Linear(H, C), Linear(C, H)

    def forward(self, x, cos, sin, mask):
        h = rms(x)
        q, k, v = (t(h).view(B, T, NH, HS).transpose(1, 2) for t in (self.q, self.k, self.v))
        rot = lambda t: torch.cat([-t[..., HS // 2:], t[..., :HS // 2]], -1)
        q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(HS) + mask, -1) @ v
        x = x + self.o(att.transpose(1, 2).reshape(B, T, C))
        h = rms(x)
        return x + self.down(torch.nn.functional.silu(self.gate(h)) * self.up(h))


blocks = torch.nn.ModuleList([Block() for _ in range(layers)])
embed = torch.randn(V, C) * 0.5
inv = 1.0 / (10000 ** (torch.arange(0, HS // 2).float() * 2 / HS))
ang = torch.arange(T).float()[:, None] * inv[None]
cos, sin = torch.cat([ang.cos()] * 2, -1), torch.cat([ang.sin()] * 2, -1)
mask = torch.triu(torch.full((T, T), -1e9), 1)
ids, tgt = torch.randint(0, V, (B, T)), torch.randint(0, V, (B, T))


def step():
    x = embed[ids]
    for b in blocks:
        x = b(x, cos, sin, mask)
    loss = torch.nn.functional.cross_entropy((rms(x) @ embed.t()).view(-1, V), tgt.view(-1))
    loss.backward()
    for p in blocks.parameters():
        p.grad = None


def matmul_rate():
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    t = time.perf_counter()
    for _ in range(10):
        a @ b
    return 2 * 1024 ** 3 * 10 / (time.perf_counter() - t) / 1e9


def blas_library():
    """The BLAS actually loaded: Debian's torch calls whatever libblas.so.3 the alternatives point at."""
    with open("/proc/self/maps") as f:
        libs = {line.split()[-1] for line in f if "blas" in line.lower() and "/" in line}
    return ", ".join(sorted(libs)) or "unknown"


def openblas_core():
    """The kernels OpenBLAS runs (its own detection, or OPENBLAS_CORETYPE), where the BLAS loaded is OpenBLAS."""
    import ctypes
    for lib in blas_library().split(", "):
        if "openblas" in lib:
            try:
                f = ctypes.CDLL(lib).openblas_get_corename
                f.restype = ctypes.c_char_p
                return f().decode()
            except (OSError, AttributeError):
                return "unknown"
    return "not OpenBLAS"


step()
if "--serve" in sys.argv:
    print(json.dumps({"ready": True, "blas": blas_library(), "core": openblas_core(), "threads": torch.get_num_threads(), "torch": torch.__version__}), flush=True)
    for line in sys.stdin:
        wall, cpu = [], []
        for _ in range(int(line)):
            w0, c0 = time.perf_counter(), time.process_time()
            step()
            wall.append((time.perf_counter() - w0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
        print(json.dumps({"wallMs": wall, "cpuMs": cpu}), flush=True)
    sys.exit(0)
t0 = time.perf_counter()
for _ in range(steps):
    step()
ms = (time.perf_counter() - t0) / steps * 1000
print(json.dumps({"blas": blas_library(), "msPerStep": ms, "tokensPerSec": B * T / ms * 1000, "threads": torch.get_num_threads(),
                  "matmulGflops": matmul_rate(), "torch": torch.__version__}))

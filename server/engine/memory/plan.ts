// The memory plan: what a training (or eval) pass holds at its peak, part by part, for a
// model config, a quantization, a LoRA config, a sequence length and micro batch, gradient
// checkpointing and a backend. The engine's pre-flight compares it with the budget
// (preflight.ts) and the code lens reports it (server/config/cost.ts): one function, so
// the two never disagree. Engine level: imports nothing above server/engine.
//
// Where the bytes live follows the engine (model/llama.ts): the 4-bit projections, norms,
// biases, LoRA state and every activation are tensors on the compute backend (the wasm
// heap on wasm, which never shrinks, so its high-water mark is what counts); the
// embedding and an untied head are compact bf16 tables on the host (model/frozenTable.ts),
// dequantized a slice of rows at a time.
//
// The per-token factors below are counts of float32 values alive at the peak, as multiples
// of the hidden size C, the MLP width I and (for attention) heads x key positions; they
// were calibrated against measured peaks (test/bench/realShapes.bench.ts prints the plan
// beside the measurement) and are the documentation of what the engine keeps. Checked at
// seq 256, wasm, 2 steps: SmolLM2-135M RSS 0.81 GB measured / 0.83 planned, wasm heap 0.54 /
// 0.54; Qwen2.5-0.5B (not used to calibrate) RSS 1.54 / 1.69, heap 0.97 / 1.08, tensors 0.85 / 0.85.
import { bytesPerParameter, type QuantizationOptions } from '../quant/spec';
import type { BackendChoice } from '../backend';
import { countParameters, LINEAR_MODULES, linearShape, loraParameterCount, type LinearModule, type LlamaConfig } from '../model/config';

export type PlanBackend = BackendChoice;
export type PlanQuantization = QuantizationOptions;

export interface MemoryPlanInput {
  model: LlamaConfig;
  quant: PlanQuantization;
  lora: { r: number; targetModules: readonly LinearModule[] };
  /** Tokens per sequence (capped at the model's context). */
  seqLen: number;
  microBatch: number;
  gradientAccumulation?: number;
  gradientCheckpointing: boolean;
  backend: PlanBackend;
  /** 'train' (forward + backward + optimizer) or 'eval' (forward only, no tape). */
  mode?: 'train' | 'eval';
  /** Vocabulary rows per chunk of the fused head + loss (model/chunkedLoss.ts). */
  vocabChunk?: number;
  /** Whether the native CPU kernels (onnxruntime-node) run beside wasm; on wasm they do unless told otherwise. */
  nativeKernels?: boolean;
}

export type PartName =
  | 'baseWeights' | 'smallWeights' | 'tables' | 'lora' | 'gradients' | 'optimizerStep' | 'savedActivations' | 'blockActivations'
  | 'lossChunk' | 'workspace' | 'runtime' | 'nativeKernels';

/**
 * When a part is alive: 'resident' for the whole run; 'backward' at the peak of the
 * backward pass; 'optimizer' during the optimizer step, after the activations are freed.
 * The heap's peak is the resident parts plus the larger of the two transient phases.
 */
export type PartPhase = 'resident' | 'backward' | 'optimizer';

export interface MemoryPart {
  name: PartName;
  /** In words, for messages and tooltips. */
  label: string;
  bytes: number;
  /** 'heap': a tensor on the compute backend (the wasm heap on wasm); 'host': JavaScript memory. */
  where: 'heap' | 'host';
  phase: PartPhase;
}

export interface MemoryPlan {
  parts: MemoryPart[];
  /** Peak bytes on the compute backend (the wasm heap high-water mark on wasm, allocator slack included). */
  heapPeak: number;
  /** Peak bytes of live tensors: the resident parts plus the larger transient phase. */
  tensorPeak: number;
  /** Peak process resident set size while training (or evaluating). */
  rssPeak: number;
  /** Peak process RSS while loading: the tables as they are read, or the resident model plus one projection in flight. */
  loadPeak: number;
  /** The backend the plan assumed: 'auto' plans as wasm, the backend auto picks without tfjs-node. */
  backend: Exclude<PlanBackend, 'auto'>;
  /** The wasm heap's limit, when the backend is wasm. */
  wasmHeapLimit?: number;
  /** heapPeak exceeds the wasm heap (wasm, or auto planned as wasm). */
  overWasmHeap: boolean;
  /** Tokens per sequence the plan used (seqLen capped at the context). */
  seqLen: number;
}

/**
 * The wasm heap stops at 4 GiB of addresses; TensorFlow.js's allocator and the module's own
 * data take the rest, and past about 3.9 GB tensors are silently placed at address 0
 * (DESIGN.md). The plan budgets against this figure.
 */
export const WASM_HEAP_LIMIT = 3.9e9;

/** Node, TensorFlow.js and the wasm module with nothing loaded (measured: 150-170 MB RSS). */
export const RUNTIME_BYTES = 170 * 2 ** 20;

/**
 * The native kernels' fixed share: onnxruntime's library, one arena per session (a session
 * per kind of call) and the free memory glibc's allocator keeps after the provider raised
 * its thresholds (kernels/native/mallocPrimer.ts, up to 64 MB). Measured: SmolLM2-135M at
 * T 256 peaked 173 MiB higher with the provider than without it, of which the per-call
 * buffers below are about 35 MiB.
 */
export const NATIVE_RUNTIME_BYTES = 136 * 2 ** 20;
/** A tokenizer.json's parsed vocabulary and merges, per vocabulary entry (measured ~1 KB). */
export const TOKENIZER_BYTES_PER_TOKEN = 1024;

// Floats alive per token at the peak of one decoder block's backward (the recomputed block
// with its tape and the gradients flowing through it), as multiples of C and I, and per head
// and key position (scores, probabilities and their gradients).
export const BLOCK_HIDDEN_FACTOR = 24;
export const BLOCK_INTERMEDIATE_FACTOR = 8;
export const BLOCK_ATTENTION_FACTOR = 4;
/** Without checkpointing each block keeps its forward intermediates (no gradients yet): about half. */
export const TAPE_HIDDEN_FACTOR = 14;
export const TAPE_INTERMEDIATE_FACTOR = 5;
export const TAPE_ATTENTION_FACTOR = 2;
/**
 * Floats per token that a checkpointed block keeps across the whole pass: its input, and on
 * wasm the tape's copy of it (the Identity kernel copies data).
 */
export const SAVED_HIDDEN_FACTOR = 2;
/** Fused head + loss: per token and chunk row, scores, exp and probabilities (float32). */
export const LOSS_CHUNK_FACTOR = 3;
export const DEFAULT_VOCAB_CHUNK = 4096;
/** LoRA A/B and AdamW's two moments, float32 each: held for the whole run. */
export const BYTES_PER_TRAINABLE_PARAMETER = 12;
/**
 * Float32 copies of the trainable parameters alive during the optimizer step: the
 * gradients, their accumulated mean, the clipped gradients, and the AdamW update's
 * temporaries. Measured 13 on SmolLM2-135M (4.9M trainable: the step's peak did not move
 * between seq 64 and 256, so it is this phase, not the activations).
 */
export const OPTIMIZER_STEP_COPIES = 16;
/**
 * The wasm heap's high-water mark over the peak of live tensor bytes: the allocator's
 * fragmentation across steps (measured 540 MB of heap for 426 MB of tensors on SmolLM2-135M
 * from the second step on; the heap never shrinks, so the first step alone reads lower).
 */
export const WASM_HEAP_FRAGMENTATION = 1.27;
/** Gradients alive during the backward pass: the LoRA gradients and, with accumulation, the running sum. */
export const BACKWARD_GRADIENT_COPIES = 1;

/**
 * Resident bytes per quantized projection parameter: 4-bit codes plus per block of b
 * weights one absmax, fp32 (4/b) or, with double quantization, an 8-bit code plus one fp32
 * per 256 blocks (1/b + 4/(256 b)). At b = 64: 0.5625, or 0.5159 with double quant.
 */
export const bytesPerBaseParameter = (q: PlanQuantization): number => bytesPerParameter(q);

/** The plan for one run. Pure arithmetic: cheap enough for every keystroke of the code lens. */
export function planMemory(input: MemoryPlanInput): MemoryPlan {
  const m = input.model;
  const backend = input.backend === 'auto' ? 'wasm' : input.backend;
  const train = (input.mode ?? 'train') === 'train';
  const T = Math.max(1, Math.min(input.seqLen, m.maxPositionEmbeddings));
  const N = Math.max(1, input.microBatch) * T; // tokens per micro-batch
  const C = m.hiddenSize, I = m.intermediateSize, L = m.numLayers, nh = m.numHeads;
  const params = countParameters(m);
  const tableElements = m.vocabSize * C;
  const tables = m.tieWordEmbeddings ? 1 : 2;
  const largestProjection = Math.max(...LINEAR_MODULES.map((mod) => linearShape(m, mod)[0] * linearShape(m, mod)[1]));
  const trainable = train ? loraParameterCount(m, input.lora.r, input.lora.targetModules) : 0;
  const chunk = Math.min(input.vocabChunk ?? DEFAULT_VOCAB_CHUNK, m.vocabSize);
  const ckpt = input.gradientCheckpointing;

  const perTokenBlock = train
    ? BLOCK_HIDDEN_FACTOR * C + BLOCK_INTERMEDIATE_FACTOR * I + BLOCK_ATTENTION_FACTOR * nh * T
    : 6 * C + 3 * I + 2 * nh * T; // eval: one block's forward, freed as the next starts
  const perTokenTape = TAPE_HIDDEN_FACTOR * C + TAPE_INTERMEDIATE_FACTOR * I + TAPE_ATTENTION_FACTOR * nh * T;
  const saved = !train ? 0 : ckpt ? L * N * SAVED_HIDDEN_FACTOR * C * 4 : L * N * perTokenTape * 4;
  const smallWeights = (params.other - tables * tableElements) * 4;

  const accumulating = (input.gradientAccumulation ?? 1) > 1;
  const parts: MemoryPart[] = [
    { name: 'baseWeights', label: `base projections (${input.quant.quantization === 'none' ? 'float32' : input.quant.quantization})`, bytes: params.linear * bytesPerBaseParameter(input.quant), where: 'heap', phase: 'resident' },
    { name: 'smallWeights', label: 'norms and biases', bytes: smallWeights, where: 'heap', phase: 'resident' },
    { name: 'lora', label: 'LoRA weights and AdamW moments', bytes: trainable * (BYTES_PER_TRAINABLE_PARAMETER + (accumulating ? 4 : 0)), where: 'heap', phase: 'resident' },
    { name: 'gradients', label: 'LoRA gradients', bytes: trainable * 4 * BACKWARD_GRADIENT_COPIES, where: 'heap', phase: 'backward' },
    { name: 'savedActivations', label: ckpt ? 'checkpointed block inputs' : 'activations kept for the backward pass', bytes: saved, where: 'heap', phase: 'backward' },
    { name: 'blockActivations', label: train ? 'one block recomputed with its gradients' : 'one block\'s forward', bytes: N * perTokenBlock * 4, where: 'heap', phase: 'backward' },
    { name: 'lossChunk', label: `fused head + loss over ${chunk}-row vocabulary chunks`, bytes: (N * chunk * LOSS_CHUNK_FACTOR + chunk * C + 2 * N * C) * 4, where: 'heap', phase: 'backward' },
    { name: 'workspace', label: 'dequantized projection and matmul packing', bytes: input.quant.quantization === 'none' ? largestProjection * 4 : 2 * largestProjection * 4, where: 'heap', phase: 'backward' },
    { name: 'optimizerStep', label: 'gradient clipping and the AdamW step', bytes: trainable * 4 * OPTIMIZER_STEP_COPIES, where: 'heap', phase: 'optimizer' },
    { name: 'tables', label: `embedding${tables === 2 ? ' and head' : ' (tied head)'} in bf16`, bytes: tables * tableElements * 2, where: 'host', phase: 'resident' },
    { name: 'runtime', label: 'Node, TensorFlow.js and the tokenizer', bytes: RUNTIME_BYTES + m.vocabSize * TOKENIZER_BYTES_PER_TOKEN, where: 'host', phase: 'resident' },
  ];
  if (backend === 'wasm' && (input.nativeKernels ?? true)) {
    // What the native calls' arenas hold at their largest, beside the fixed share: a 4-bit
    // weight dequantized inside the forward product (MatMulBnb4), attention's (B, nh, T, T)
    // scores and their gradients (about six), and a loss chunk's (v, N) scores (about four).
    const perCall = largestProjection * 4 + 6 * Math.max(1, input.microBatch) * nh * T * T * 4 + 4 * N * chunk * 4;
    parts.push({ name: 'nativeKernels', label: 'native CPU kernels (onnxruntime): library, arenas and kept buffers',
      bytes: NATIVE_RUNTIME_BYTES + perCall, where: 'host', phase: 'resident' });
  }
  const sum = (where: 'heap' | 'host', phase?: PartPhase) =>
    parts.filter((p) => p.where === where && (phase === undefined || p.phase === phase)).reduce((a, p) => a + p.bytes, 0);
  const tensorPeak = sum('heap', 'resident') + Math.max(sum('heap', 'backward'), sum('heap', 'optimizer'));
  const heapPeak = backend === 'wasm' ? tensorPeak * WASM_HEAP_FRAGMENTATION : tensorPeak;
  const host = sum('host');
  // Loading reads the embedding (and an untied head) first, then the blocks. While a table
  // is read, its bf16 bits as read, the fp32 widening and the table's own bf16 copy are all
  // alive (8 bytes a value); once the blocks load, the resident model plus one projection in
  // flight (bits and fp32). Measured: SmolLM2-135M 423 MB, Llama-3.2-1B 2.38 GB.
  const runtime = parts.find((p) => p.name === 'runtime')!.bytes;
  const whileTables = runtime + (tables - 1) * tableElements * 2 + tableElements * 8;
  // The native calls' arenas fill during training, not while the model loads.
  const native = parts.find((p) => p.name === 'nativeKernels')?.bytes ?? 0;
  const resident = sum('heap', 'resident') - parts.find((p) => p.name === 'lora')!.bytes + host - native;
  const loadPeak = Math.max(whileTables, resident + largestProjection * 6);
  const onWasm = backend === 'wasm';
  return {
    parts,
    heapPeak,
    tensorPeak,
    rssPeak: Math.max(loadPeak, host + heapPeak),
    loadPeak,
    backend,
    ...(onWasm ? { wasmHeapLimit: WASM_HEAP_LIMIT } : {}),
    overWasmHeap: onWasm && heapPeak > WASM_HEAP_LIMIT,
    seqLen: T,
  };
}

/** The parts, largest first. */
export function largestParts(plan: MemoryPlan, n = 3, where?: MemoryPart['where']): MemoryPart[] {
  return plan.parts.filter((p) => where === undefined || p.where === where).sort((a, b) => b.bytes - a.bytes).slice(0, n);
}

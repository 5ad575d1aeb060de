// Pre-flight: the memory plan against the budget, before any tensor is loaded. A run that
// will not fit is refused here with the largest parts named and the max_seq_len /
// micro_batch_size that would fit, instead of ending in Aborted(), "memory access out of
// bounds" or an XNNPACK status from the wasm runtime halfway through a step.
import { freemem, totalmem } from 'node:os';
import { largestParts, planMemory, WASM_HEAP_LIMIT, type MemoryPlan, type MemoryPlanInput } from './plan';

export interface MemoryBudget {
  /** Bytes the compute heap may reach: the wasm heap's limit on wasm, else unbounded (host memory). */
  heap: number;
  /** Bytes of machine RAM a process may use (os.totalmem). */
  hostTotal: number;
  /** Bytes free now (os.freemem): a run over this fits the machine but may swap or be killed. */
  hostFree: number;
}

/** The budget for a backend on this machine. GPU memory is not known to TensorFlow.js before use, so it is not budgeted. */
export function memoryBudget(backend: MemoryPlan['backend']): MemoryBudget {
  return {
    heap: backend === 'wasm' ? WASM_HEAP_LIMIT : Number.POSITIVE_INFINITY,
    hostTotal: totalmem(),
    hostFree: freemem(),
  };
}

/** Why the plan does not fit, or undefined when it does. */
export function overBudget(plan: MemoryPlan, budget: MemoryBudget): string | undefined {
  if (plan.heapPeak > budget.heap) return `the compute heap would reach ${gb(plan.heapPeak)} but the ${plan.backend} heap stops at ${gb(budget.heap)}`;
  if (plan.rssPeak > budget.hostTotal) return `the process would reach ${gb(plan.rssPeak)} but this machine has ${gb(budget.hostTotal)} of RAM`;
  return undefined;
}

/** The largest sequence length (>= 8, multiple of 8 below the request) that fits at this micro batch. */
export function fittingSeqLen(input: MemoryPlanInput, budget: MemoryBudget): number | undefined {
  const fits = (T: number) => overBudget(planMemory({ ...input, seqLen: T }), budget) === undefined;
  let lo = 8, hi = Math.min(input.seqLen, input.model.maxPositionEmbeddings);
  if (!fits(lo)) return undefined;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid - 1;
  }
  return lo >= 64 ? lo - (lo % 8) : lo;
}

/** The largest micro batch (below the request) that fits at this sequence length. */
export function fittingMicroBatch(input: MemoryPlanInput, budget: MemoryBudget): number | undefined {
  for (let b = input.microBatch - 1; b >= 1; b--) {
    if (overBudget(planMemory({ ...input, microBatch: b }), budget) === undefined) return b;
  }
  return undefined;
}

export class MemoryPlanError extends Error {
  constructor(message: string, readonly plan: MemoryPlan) {
    super(message);
    this.name = 'MemoryPlanError';
  }
}

/**
 * Throws MemoryPlanError when the run does not fit the budget; returns the plan (and a
 * warning when it fits the machine but not the memory free right now) otherwise.
 * `what` names the model in the message (its folder).
 */
export function checkMemoryPlan(input: MemoryPlanInput, what: string, budget = memoryBudget(planMemory(input).backend)): { plan: MemoryPlan; warning?: string } {
  const plan = planMemory(input);
  const why = overBudget(plan, budget);
  if (why === undefined) {
    const warning = plan.rssPeak > budget.hostFree
      ? `the run is planned to reach ${gb(plan.rssPeak)} but only ${gb(budget.hostFree)} of RAM is free now: it may swap or be stopped by the system`
      : undefined;
    return { plan, ...(warning ? { warning } : {}) };
  }
  const heapBound = plan.heapPeak > budget.heap;
  const parts = largestParts(plan, 3, heapBound ? 'heap' : undefined).map((p) => `${p.label} ${gb(p.bytes)}`).join(', ');
  const seq = input.microBatch >= 1 ? fittingSeqLen(input, budget) : undefined;
  const batch = fittingMicroBatch(input, budget);
  const advice: string[] = [];
  if (batch !== undefined) advice.push(`training.micro_batch_size: ${batch} (at max_seq_len ${plan.seqLen})`);
  if (seq !== undefined && seq < plan.seqLen) advice.push(`data.max_seq_len: ${seq} (at micro_batch_size ${input.microBatch})`);
  if (input.microBatch > 1 && seq === undefined) {
    const seq1 = fittingSeqLen({ ...input, microBatch: 1 }, budget);
    if (seq1 !== undefined) advice.push(`micro_batch_size 1 with max_seq_len ${seq1}`);
  }
  if (advice.length === 0 && input.lora.r > 1) {
    // The optimizer step and the adapter's state scale with the rank, not the sequence.
    for (let r = input.lora.r >> 1; r >= 1; r >>= 1) {
      if (overBudget(planMemory({ ...input, lora: { ...input.lora, r } }), budget) === undefined) {
        advice.push(`lora.r: ${r} (at max_seq_len ${plan.seqLen}, micro_batch_size ${input.microBatch})`);
        break;
      }
    }
  }
  if (!input.gradientCheckpointing) {
    const withCkpt = planMemory({ ...input, gradientCheckpointing: true });
    if (overBudget(withCkpt, budget) === undefined) advice.push('training.gradient_checkpointing: true');
  }
  const fix = advice.length > 0
    ? `What would fit: ${advice.join('; or ')}.`
    : `Nothing fits at this size: the model alone exceeds the budget${plan.backend === 'wasm' ? ' (try a backend without the wasm heap limit, e.g. tensorflow)' : ''}.`;
  throw new MemoryPlanError(
    `${what}: this run does not fit in memory: ${why} (max_seq_len ${plan.seqLen}, micro_batch_size ${input.microBatch}). ` +
      `Largest parts: ${parts}. ${fix}`,
    plan,
  );
}

function gb(n: number): string {
  if (!Number.isFinite(n)) return 'unbounded';
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : `${(n / 1e6).toFixed(0)} MB`;
}

// The quantization spec, declared once. How a frozen base projection is stored: its type
// (a 4-bit codebook, or none for float32), the weights per absmax block and whether the
// absmax values are themselves quantized (QLoRA's double quantization). The `.qlora`
// schema (model.quantization / block_size / double_quant), the CLI's --quantization /
// --block-size / --no-double-quant flags, checkpoints and adapters' recorded base, merge,
// the cost lens and the quantizer all take their lists, rule and sizes from here.
//
// Adding a 4-bit type: its name in FOUR_BIT_TYPES, its 16 levels in codebooks.ts
// (levelsOf), its encoder in blockwise.ts and its one-line doc in the schema
// (server/config/schema.ts, which the compiler checks against QUANTIZATIONS); the
// Dequantize4bit kernels read the levels they are given and need no change.

/** The 4-bit codebooks, as bitsandbytes names them. */
export const FOUR_BIT_TYPES = ['nf4', 'fp4'] as const;
export type QuantType = (typeof FOUR_BIT_TYPES)[number];

/** Every way a base projection can be stored: a 4-bit type, or float32. */
export const QUANTIZATIONS = [...FOUR_BIT_TYPES, 'none'] as const;
export type Quantization = (typeof QUANTIZATIONS)[number];

/** Double quantization: absmax values per 8-bit-coded block (one float32 scale each), as bitsandbytes. */
export const NESTED_BLOCK_SIZE = 256;

/** How the base is quantized: what an engine run is given and what an adapter records. */
export interface QuantizationOptions {
  quantization: Quantization;
  blockSize: number;
  /** Only meaningful for a 4-bit type; false with quantization none. */
  doubleQuant: boolean;
}

export const DEFAULT_QUANTIZATION: QuantizationOptions = { quantization: 'nf4', blockSize: 64, doubleQuant: true };

/**
 * The block-size rule, the one every entry point checks: a power of two from 32 to 4096
 * (bitsandbytes' range; a multiple of 8 so that a block's codes fill whole int32 words).
 */
export const BLOCK_SIZE_RANGE = { min: 32, max: 4096 } as const;
export const BLOCK_SIZE_RULE = `a power of two from ${BLOCK_SIZE_RANGE.min} to ${BLOCK_SIZE_RANGE.max}`;

/** The block sizes the rule allows, smallest first (for completion). */
export const BLOCK_SIZES: readonly number[] = (() => {
  const out: number[] = [];
  for (let b = BLOCK_SIZE_RANGE.min; b <= BLOCK_SIZE_RANGE.max; b *= 2) out.push(b);
  return out;
})();

export function isBlockSize(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= BLOCK_SIZE_RANGE.min && n <= BLOCK_SIZE_RANGE.max && (n & (n - 1)) === 0;
}

export function isQuantization(s: unknown): s is Quantization {
  return typeof s === 'string' && (QUANTIZATIONS as readonly string[]).includes(s);
}

export function isFourBit(q: Quantization): q is QuantType {
  return q !== 'none';
}

/** Why `opts` is not a valid spec (naming `what`, e.g. a flag or a file), or undefined. */
export function checkQuantization(opts: { quantization: unknown; blockSize: unknown }, what = 'quantization'): string | undefined {
  if (!isQuantization(opts.quantization)) {
    return `${what}: quantization must be ${QUANTIZATIONS.join(', ')} (got ${JSON.stringify(opts.quantization)})`;
  }
  if (isFourBit(opts.quantization) && !isBlockSize(opts.blockSize)) {
    return `${what}: block size must be ${BLOCK_SIZE_RULE} (got ${JSON.stringify(opts.blockSize)})`;
  }
  return undefined;
}

/**
 * Resident bytes per quantized base parameter (the seven linear projections), as the
 * tensors the engine holds:
 * - none: 4 (float32);
 * - 4-bit: 0.5 for the code, plus per block of `b` weights one absmax: without double
 *   quantization a float32, 0.5 + 4/b; with it an 8-bit code plus one float32 scale per
 *   256 absmax codes, 0.5 + 1/b + 4/(256 b).
 * At b = 64: 0.5625 without, 0.515869140625 with double quantization (QLoRA's 4.127 bits).
 */
export function bytesPerParameter(q: QuantizationOptions): number {
  if (!isFourBit(q.quantization)) return 4;
  const b = q.blockSize;
  return q.doubleQuant ? 0.5 + 1 / b + 4 / (b * NESTED_BLOCK_SIZE) : 0.5 + 4 / b;
}

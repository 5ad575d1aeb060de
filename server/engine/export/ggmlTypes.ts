// The GGML tensor types an export can write, with their block layout as ggml defines it
// (ggml-common.h): a block of `blockSize` values takes `blockBytes` bytes on disk.
// There is no 4-bit NormalFloat type in GGML: a QLoRA base is written dequantized.

export const EXPORT_TYPES = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_1'] as const;
export type ExportType = (typeof EXPORT_TYPES)[number];

export interface GgmlType {
  /** ggml_type enum value stored in a tensor info. */
  id: number;
  blockSize: number;
  blockBytes: number;
  /** general.file_type (llama_ftype) of a file whose matrices are mostly of this type. */
  fileType: number;
}

export const GGML: Record<ExportType, GgmlType> = {
  f32: { id: 0, blockSize: 1, blockBytes: 4, fileType: 0 },
  f16: { id: 1, blockSize: 1, blockBytes: 2, fileType: 1 },
  q4_0: { id: 2, blockSize: 32, blockBytes: 18, fileType: 2 },
  q4_1: { id: 3, blockSize: 32, blockBytes: 20, fileType: 3 },
  q8_0: { id: 8, blockSize: 32, blockBytes: 34, fileType: 7 },
  bf16: { id: 30, blockSize: 1, blockBytes: 2, fileType: 32 },
};

export const isBlockQuantized = (t: ExportType) => GGML[t].blockSize > 1;

/** Bytes of a tensor of `count` values (whole rows of the type's block size). */
export function tensorBytes(t: ExportType, count: number): number {
  const g = GGML[t];
  return (count / g.blockSize) * g.blockBytes;
}

/**
 * The type a tensor is written in when `wanted` is asked for: vectors (norms, biases) stay
 * float32 as llama.cpp's converter keeps them, and a block type needs rows that are whole
 * blocks (`rowLength` % 32 == 0), else the tensor falls back to float16.
 */
export function typeFor(wanted: ExportType, shape: readonly number[]): ExportType {
  if (shape.length < 2) return 'f32';
  if (isBlockQuantized(wanted) && shape[shape.length - 1] % GGML[wanted].blockSize !== 0) return 'f16';
  return wanted;
}

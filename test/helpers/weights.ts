// Small host-side weight fixtures shared by the quantization and kernel tests.
import { Rng } from '../../server/engine/rng';

/** A [rows, cols] weight of N(0, 0.05^2) values, deterministic from `seed`. */
export function randomWeight(rows: number, cols: number, seed: number): { shape: [number, number]; data: Float32Array } {
  const rng = new Rng(seed);
  return { shape: [rows, cols], data: Float32Array.from({ length: rows * cols }, () => rng.normal() * 0.05) };
}

/** The [cols, rows] transpose of a row-major [rows, cols] matrix. */
export function transposeHost(w: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = w[r * cols + c];
  return t;
}

// What the fuzz suite's parts share: a small seeded generator (so a failing case replays
// from its seed and index) and the outcome of one case.

/** mulberry32. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function pick<T>(next: () => number, items: readonly T[]): T {
  return items[Math.floor(next() * items.length)];
}

/**
 * accepted: the input was taken (a mutation that kept it valid); clean: refused with a
 * message naming the file and what is wrong; unclear: refused without saying where;
 * threw: (language service) an exception instead of a diagnostic.
 */
export interface Outcome { outcome: 'accepted' | 'clean' | 'unclear' | 'threw'; what?: string; message?: string }

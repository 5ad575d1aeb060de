// "Did you mean": the closest known name to a misspelt or foreign one.

export interface Candidate {
  /** What to suggest. */
  name: string;
  /** Other spellings that should lead to `name` (other tools' names for the setting). */
  aliases?: readonly string[];
}

/**
 * The candidate whose name or alias is nearest `word`, if near enough: an exact alias;
 * then the one candidate containing the word or contained in it (`batch_size` in
 * `micro_batch_size`, `gpu` in `webgpu`); then an edit distance of one in a short word,
 * a third of the letters in a longer one (typos).
 */
export function suggest(word: string, candidates: readonly Candidate[]): string | undefined {
  const w = normalize(word);
  if (w === '') return undefined;
  for (const c of candidates) {
    if (c.aliases?.some((a) => normalize(a) === w)) return c.name;
  }
  if (w.length >= 3) {
    const containing = candidates.filter((c) => {
      const n = normalize(c.name);
      return n.length >= 3 && n !== w && (n.includes(w) || w.includes(n));
    });
    if (containing.length === 1) return containing[0].name;
  }
  let best: string | undefined;
  let bestDistance = (w.length <= 1 ? 0 : w.length <= 5 ? 1 : Math.floor(w.length / 3)) + 1;
  for (const c of candidates) {
    for (const spelling of [c.name, ...(c.aliases ?? [])]) {
      const d = editDistance(w, normalize(spelling));
      if (d < bestDistance) {
        bestDistance = d;
        best = c.name;
      }
    }
  }
  return best;
}
/** Case and separators do not matter: `learningRate`, `learning-rate`, `LEARNING_RATE`. */
function normalize(s: string): string {
  return s.toLowerCase().replace(/[-_\s]/g, '');
}

/** Optimal string alignment distance (Levenshtein plus adjacent transpositions). */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  if (a.length === 0) return b.length;
  if (b.length === 0) return a.length;
  let prevPrev: number[] = [];
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, prevPrev[j - 2] + 1);
      row.push(d);
    }
    prevPrev = prev;
    prev = row;
  }
  return prev[b.length];
}

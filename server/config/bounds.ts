// Limits checked on the raw text before the YAML parser sees it. The parser recurses per
// level of nesting and does real work per flow token, so a text that is deeply nested
// (thousands of levels) can overflow its stack, or abort V8 outright, and a huge one can
// hold the language server or the training server for seconds. A .qlora file has sections,
// keys and short lists: a few KB, three or four levels. These bounds are far above that.

/** Characters a .qlora text may have (a commented 300-line config is about 15 KB). */
export const MAX_CONFIG_CHARS = 64 * 1024;
/** Levels of nesting (block indentation, `- ` items, flow brackets) a .qlora text may have. */
export const MAX_CONFIG_DEPTH = 32;

export interface BoundsProblem {
  /** Offsets into the text: where the limit was passed. */
  range: [number, number];
  message: string;
}

export interface Bounds {
  /** Set when the text is too large or too deep to parse. */
  problem?: BoundsProblem;
  /**
   * Offsets of `[` and `{` never closed. The parser would read the whole rest of the file
   * as the inside of such a collection (an error per line, and seconds on a long file),
   * the usual state of a line being typed: `target_modules: [q_proj, {`.
   */
  unclosed: number[];
}

/** Whether `text` is within bounds, and its unclosed flow brackets. One linear scan. */
export function checkBounds(text: string): Bounds {
  const problem = scan(text);
  return typeof problem === 'object' && !Array.isArray(problem) ? { problem, unclosed: [] } : { unclosed: problem };
}

function scan(text: string): BoundsProblem | number[] {
  if (text.length > MAX_CONFIG_CHARS) {
    return {
      range: [0, Math.min(text.length, lineEndOf(text, 0))],
      message: `this file has ${text.length} characters, more than the ${MAX_CONFIG_CHARS} a .qlora config may have; it was not parsed`,
    };
  }
  const indents: number[] = [];
  const open: number[] = [];
  let lineStart = 0;
  while (lineStart <= text.length) {
    const end = lineEndOf(text, lineStart);
    let i = lineStart;
    while (i < end && (text[i] === ' ' || text[i] === '\t')) i++;
    const blank = i === end || text[i] === '#';
    if (!blank && open.length === 0) {
      // The indentation stack: how many enclosing blocks this line sits in.
      while (indents.length && indents[indents.length - 1] >= i - lineStart) indents.pop();
      indents.push(i - lineStart);
    }
    let compact = 0;
    let quote: string | undefined;
    for (let j = i; j < end; j++) {
      const c = text[j];
      if (quote) {
        if (c === quote) quote = undefined;
        else if (c === '\\' && quote === '"') j++;
        continue;
      }
      if (c === '#' && (j === lineStart || /\s/.test(text[j - 1]))) break;
      // A quote opens a quoted scalar only where a scalar starts (`don't` is plain text).
      if ((c === '"' || c === "'") && (j === i || /[\s[{,:]/.test(text[j - 1]))) quote = c;
      else if (c === '[' || c === '{') open.push(j);
      else if ((c === ']' || c === '}') && open.length) open.pop();
      // `- - - x` and `? ? x` nest on one line.
      else if ((c === '-' || c === '?') && !open.length && (text[j + 1] === ' ' || text[j + 1] === '\t') && /^[\s\-?]*$/.test(text.slice(i, j))) compact++;
      const depth = indents.length + compact + open.length;
      if (depth > MAX_CONFIG_DEPTH) {
        return { range: [j, j + 1], message: `nesting deeper than ${MAX_CONFIG_DEPTH} levels here: a .qlora config holds sections of keys; the file was not parsed` };
      }
    }
    // A quoted scalar may span lines; brackets in it do not count either.
    lineStart = end + 1;
  }
  return open;
}

function lineEndOf(text: string, from: number): number {
  const n = text.indexOf('\n', from);
  return n < 0 ? text.length : n;
}

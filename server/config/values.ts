// Checks one key's YAML value against its declaration in the schema and converts it.
// Every problem names the key and is placed on the offending node (or list entry), and
// carries the replacement values a quick fix can offer.
import { isScalar, isSeq, type Node } from 'yaml';
import { LINEAR_MODULES, type LinearModule } from '../engine/model/config';
import { expectation, formatDefault, formatNumber, formatValue } from './describe';
import type { DiagnosticCode, Severity } from './diagnostics';
import { ALL_LINEAR, type EnumKey, type IntegerKey, type KeyInfo, type ModulesKey, type NumberKey } from './schema';
import { suggest } from './suggest';

/** A replacement text for the offending node, offered as a quick fix. */
export interface Replacement {
  title: string;
  text: string;
}

export interface ValueReporter {
  report(
    range: readonly [number, number],
    severity: Severity,
    code: DiagnosticCode,
    message: string,
    extra?: { suggestion?: string; replacements?: Replacement[] },
  ): void;
}

/** Offsets of a node's value, without trailing comments or line breaks. */
export function valueRange(node: Node): [number, number] {
  const [start, end] = node.range ?? [0, 0];
  return [start, end];
}

/**
 * The converted value, or undefined when it is unusable (the problem is reported and
 * the default stands in).
 */
export function readValue(key: KeyInfo, node: Node, text: string, out: ValueReporter): unknown {
  const { spec } = key;
  switch (spec.type) {
    case 'integer':
      return readInteger(key, spec, node, out);
    case 'number':
      return readNumber(key, spec, node, out);
    case 'boolean': {
      if (isScalar(node) && typeof node.value === 'boolean') return node.value;
      const word = isScalar(node) ? String(node.value).toLowerCase() : '';
      const meant = ['yes', 'on', 'y', 'true'].includes(word) ? 'true' : ['no', 'off', 'n', 'false'].includes(word) ? 'false' : undefined;
      wrongType(key, node, text, out, meant ? [{ title: `Write ${meant}`, text: meant }] : defaultReplacement(key));
      return undefined;
    }
    case 'enum':
      return readEnum(key, spec, node, text, out);
    case 'path': {
      if (isScalar(node) && (typeof node.value === 'string' || typeof node.value === 'number') && String(node.value) !== '') {
        // A bare number is still a folder name; take it as written, not as the number.
        return typeof node.value === 'string' ? node.value : sourceOf(node, text);
      }
      wrongType(key, node, text, out, []);
      return undefined;
    }
    case 'modules':
      return readModules(key, spec, node, text, out);
  }
}

function readInteger(key: KeyInfo, spec: IntegerKey, node: Node, out: ValueReporter): number | undefined {
  const n = numberIn(key, node, out);
  if (n === undefined) return undefined;
  const range = valueRange(node);
  if (!Number.isInteger(n)) {
    const rounded = clamp(Math.round(n), spec.min, spec.max);
    out.report(range, 'error', 'wrong-type', `${key.path} must be ${expectation(spec)}, got ${formatNumber(n)}`, {
      replacements: [{ title: `Set ${key.path} to ${rounded}`, text: String(rounded) }],
    });
    return undefined;
  }
  const outside = (spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max);
  if (outside || (spec.powerOfTwo && !isPowerOfTwo(n))) {
    const nearest = spec.powerOfTwo ? nearestPowerOfTwo(n, spec.min ?? 1, spec.max ?? 2 ** 30) : clamp(n, spec.min, spec.max);
    out.report(range, 'error', 'out-of-range', `${key.path} must be ${expectation(spec)}, got ${n}`, {
      replacements: intoRange(key, String(nearest)),
    });
    return undefined;
  }
  warnIfSuspicious(key, spec, n, range, out);
  return n;
}

function readNumber(key: KeyInfo, spec: NumberKey, node: Node, out: ValueReporter): number | undefined {
  const n = numberIn(key, node, out);
  if (n === undefined) return undefined;
  const range = valueRange(node);
  const below = spec.min !== undefined && (spec.minExclusive ? n <= spec.min : n < spec.min);
  const above = spec.max !== undefined && (spec.maxExclusive ? n >= spec.max : n > spec.max);
  if (below || above) {
    // A closed bound is the nearest valid value; past an open one there is none, so
    // only the default is offered.
    const bound = below ? (spec.minExclusive ? undefined : spec.min) : spec.maxExclusive ? undefined : spec.max;
    out.report(range, 'error', 'out-of-range', `${key.path} must be ${expectation(spec)}, got ${formatNumber(n)}`, {
      replacements: intoRange(key, bound === undefined ? undefined : formatNumber(bound)),
    });
    return undefined;
  }
  warnIfSuspicious(key, spec, n, range, out);
  return n;
}

/** A finite number from a scalar; reports anything else. */
function numberIn(key: KeyInfo, node: Node, out: ValueReporter): number | undefined {
  if (isScalar(node) && typeof node.value === 'number') {
    if (Number.isFinite(node.value)) return node.value;
    out.report(valueRange(node), 'error', 'out-of-range', `${key.path} must be a finite number, got ${String(node.value)}`, {
      replacements: defaultReplacement(key),
    });
    return undefined;
  }
  // A quoted "2e-4" is a string in YAML; unquoting it is the likely fix.
  const unquoted = isScalar(node) && typeof node.value === 'string' && node.value.trim() !== '' ? Number(node.value) : NaN;
  const replacements = Number.isFinite(unquoted)
    ? [{ title: `Write ${formatValue(unquoted)} as a number`, text: formatNumber(unquoted) }]
    : defaultReplacement(key);
  wrongType(key, node, '', out, replacements);
  return undefined;
}

function warnIfSuspicious(key: KeyInfo, spec: IntegerKey | NumberKey, n: number, range: [number, number], out: ValueReporter): void {
  if (spec.warnAbove && n > spec.warnAbove.value) {
    out.report(range, 'warning', 'suspicious-value', `${key.path} ${formatNumber(n)} is high: ${spec.warnAbove.reason}`, {
      replacements: defaultReplacement(key),
    });
  }
}

function readEnum(key: KeyInfo, spec: EnumKey, node: Node, text: string, out: ValueReporter): string | undefined {
  const allowed = Object.keys(spec.values);
  if (isScalar(node) && typeof node.value === 'string' && allowed.includes(node.value)) return node.value;
  if (isScalar(node) && node.value !== null && typeof node.value !== 'object') {
    const written = String(node.value);
    const meant = suggest(written, allowed.map((name) => ({ name })));
    out.report(
      valueRange(node),
      'error',
      'unknown-value',
      `${key.path} must be one of ${allowed.join(' | ')}, got ${written}${meant ? `; did you mean ${meant}?` : ''}`,
      { suggestion: meant, replacements: meant ? [{ title: `Change to ${meant}`, text: meant }] : defaultReplacement(key) },
    );
    return undefined;
  }
  wrongType(key, node, text, out, defaultReplacement(key));
  return undefined;
}

function readModules(key: KeyInfo, spec: ModulesKey, node: Node, text: string, out: ValueReporter): LinearModule[] | undefined {
  const candidates = [...LINEAR_MODULES, ALL_LINEAR].map((name) => ({ name }));
  if (isScalar(node) && node.value === ALL_LINEAR) return [...LINEAR_MODULES];
  if (isScalar(node) && typeof node.value === 'string') {
    const written = node.value;
    const module = isLinearModule(written) ? written : undefined;
    const meant = module ?? suggest(written, candidates);
    const message = module
      ? `${key.path} must be a list or ${ALL_LINEAR}: write [${module}]`
      : `${key.path} must be ${expectation(spec)}, got ${written}${meant ? `; did you mean ${meant}?` : ''}`;
    const fixText = meant === ALL_LINEAR ? ALL_LINEAR : meant ? `[${meant}]` : undefined;
    out.report(valueRange(node), 'error', module ? 'wrong-type' : 'unknown-value', message, {
      suggestion: meant,
      replacements: fixText ? [{ title: `Change to ${fixText}`, text: fixText }] : defaultReplacement(key),
    });
    return undefined;
  }
  if (!isSeq(node)) {
    wrongType(key, node, text, out, defaultReplacement(key));
    return undefined;
  }
  if (node.items.length === 0) {
    out.report(valueRange(node), 'error', 'out-of-range', `${key.path} is empty: name at least one module, or ${ALL_LINEAR}`, {
      replacements: defaultReplacement(key),
    });
    return undefined;
  }
  const modules: LinearModule[] = [];
  let ok = true;
  for (const item of node.items) {
    const itemNode = item as Node;
    const written = isScalar(itemNode) ? String(itemNode.value) : sourceOf(itemNode, text);
    if (isScalar(itemNode) && isLinearModule(written)) {
      if (modules.includes(written)) {
        out.report(valueRange(itemNode), 'warning', 'duplicate-key', `${key.path} lists ${written} twice`);
      } else {
        modules.push(written);
      }
      continue;
    }
    ok = false;
    if (written === ALL_LINEAR) {
      out.report(valueRange(itemNode), 'error', 'unknown-value', `${key.path}: ${ALL_LINEAR} stands alone, not in a list`, {
        replacements: [],
      });
      continue;
    }
    const meant = suggest(written, LINEAR_MODULES.map((name) => ({ name })));
    out.report(
      valueRange(itemNode),
      'error',
      'unknown-value',
      `${key.path}: ${written} is not a linear module of a Llama-family model (${LINEAR_MODULES.join(', ')})${meant ? `; did you mean ${meant}?` : ''}`,
      { suggestion: meant, replacements: meant ? [{ title: `Change to ${meant}`, text: meant }] : [] },
    );
  }
  return ok ? modules : undefined;
}

function wrongType(key: KeyInfo, node: Node, text: string, out: ValueReporter, replacements: Replacement[]): void {
  out.report(valueRange(node), 'error', 'wrong-type', `${key.path} must be ${expectation(key.spec)}, got ${describeNode(node, text)}`, {
    replacements,
  });
}

/** How a wrong value reads in a message: `the string "8"`, `a list`, `true`. */
function describeNode(node: Node, text: string): string {
  if (isScalar(node)) {
    if (typeof node.value === 'string') return `the string ${JSON.stringify(node.value)}`;
    return String(node.value);
  }
  if (isSeq(node)) return 'a list';
  if (node && typeof node === 'object' && 'items' in node) return 'a mapping';
  return sourceOf(node, text) || 'nothing';
}

function sourceOf(node: Node, text: string): string {
  const [start, end] = valueRange(node);
  return text.slice(start, end);
}

/** The fixes for an out-of-range value: the nearest valid value, then the default. */
function intoRange(key: KeyInfo, nearest: string | undefined): Replacement[] {
  const fixes: Replacement[] = [];
  if (nearest !== undefined) fixes.push({ title: `Set ${key.path} to ${nearest}`, text: nearest });
  for (const d of defaultReplacement(key)) if (d.text !== nearest) fixes.push(d);
  return fixes;
}

function defaultReplacement(key: KeyInfo): Replacement[] {
  const d = formatDefault(key.spec);
  return d === undefined ? [] : [{ title: `Set ${key.path} to its default, ${d}`, text: d }];
}

function clamp(n: number, min: number | undefined, max: number | undefined): number {
  if (min !== undefined && n < min) return min;
  if (max !== undefined && n > max) return max;
  return n;
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && Number.isInteger(Math.log2(n));
}

function nearestPowerOfTwo(n: number, min: number, max: number): number {
  const p = n <= 0 ? min : 2 ** Math.round(Math.log2(n));
  return clamp(p, min, max);
}

function isLinearModule(name: string): name is LinearModule {
  return (LINEAR_MODULES as readonly string[]).includes(name);
}

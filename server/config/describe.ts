// Words for a key's type, range and default, shared by messages, hover, completion and
// the README table so that they all say a range the same way.
import { LINEAR_MODULES } from '../engine/model/config';
import { ALL_LINEAR, type KeySpec } from './schema';

/** e.g. "integer ≥ 1", "number in [0, 1)", "power of two from 32 to 4096", "nf4 | fp4 | none". */
export function describeType(spec: KeySpec): string {
  switch (spec.type) {
    case 'integer':
      if (spec.powerOfTwo) return `power of two from ${spec.min ?? 1} to ${spec.max ?? '∞'}`;
      return `integer${describeBounds(spec.min, false, spec.max, false)}`;
    case 'number':
      return `number${describeBounds(spec.min, spec.minExclusive ?? false, spec.max, spec.maxExclusive ?? false)}`;
    case 'boolean':
      return 'true | false';
    case 'enum':
      return Object.keys(spec.values).join(' | ');
    case 'path':
      return spec.target === 'model' ? 'path to a model folder' : spec.target === 'data' ? 'path to a JSONL file' : 'path to a folder';
    case 'modules':
      return `${ALL_LINEAR} | list of ${LINEAR_MODULES.join(', ')}`;
  }
}

/** The type as a message says what a value must be: "an integer ≥ 1", "one of nf4 | fp4 | none". */
export function expectation(spec: KeySpec): string {
  switch (spec.type) {
    case 'integer':
      return spec.powerOfTwo ? `a ${describeType(spec)}` : `an ${describeType(spec)}`;
    case 'number':
    case 'path':
      return `a ${describeType(spec)}`;
    case 'boolean':
      return 'true or false';
    case 'enum':
      return `one of ${describeType(spec)}`;
    case 'modules':
      return `${ALL_LINEAR} or a list of ${LINEAR_MODULES.join(', ')}`;
  }
}

function describeBounds(min: number | undefined, minEx: boolean, max: number | undefined, maxEx: boolean): string {
  if (min !== undefined && max !== undefined) return ` in ${minEx ? '(' : '['}${min}, ${max}${maxEx ? ')' : ']'}`;
  if (min !== undefined) return ` ${minEx ? '>' : '≥'} ${min}`;
  if (max !== undefined) return ` ${maxEx ? '<' : '≤'} ${max}`;
  return '';
}

/** The default as it would be written in the file, or undefined when there is none. */
export function formatDefault(spec: KeySpec): string | undefined {
  const d = spec.default;
  if (d === undefined) return undefined;
  return formatValue(d);
}

/** A value in YAML flow syntax: numbers as JS prints them, lists in brackets. */
export function formatValue(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(formatValue).join(', ')}]`;
  if (typeof value === 'number') return formatNumber(value);
  return String(value);
}

/** Small rates in exponent form (2.0e-4), the way configs usually write them. */
export function formatNumber(n: number): string {
  if (n !== 0 && Math.abs(n) < 1e-3) {
    const [mantissa, exponent] = n.toExponential().split('e');
    return `${mantissa.includes('.') ? mantissa : `${mantissa}.0`}e${exponent}`;
  }
  return String(n);
}

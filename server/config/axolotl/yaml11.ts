// YAML for PyYAML, which Axolotl reads its config with: YAML 1.1, where a bare `no`, `on`
// or `y` is a boolean and `1e-8` (no dot, no exponent sign) is a string. A small emitter
// for the shapes an Axolotl config has (maps, lists, scalars), so that every scalar is
// written in a form PyYAML's resolvers type as intended.

/** PyYAML's implicit resolvers (resolver.py), for scalars written plain. */
export const PYYAML_RESOLVERS: ReadonlyArray<{ tag: 'bool' | 'int' | 'float' | 'null' | 'timestamp'; re: RegExp }> = [
  { tag: 'bool', re: /^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$/ },
  { tag: 'float', re: /^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$/ },
  { tag: 'int', re: /^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$/ },
  { tag: 'null', re: /^(?:~|null|Null|NULL|)$/ },
  { tag: 'timestamp', re: /^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)?)/ },
];

/** The type PyYAML gives a plain scalar. */
export function pyyamlType(plain: string): 'str' | 'bool' | 'int' | 'float' | 'null' | 'timestamp' {
  for (const r of PYYAML_RESOLVERS) if (r.re.test(plain)) return r.tag;
  return 'str';
}

/** A number as PyYAML reads it back: integers plain, others with a dot and a signed exponent. */
export function pyyamlNumber(n: number): string {
  if (!Number.isFinite(n)) throw new Error(`cannot write ${n} for PyYAML`);
  if (Number.isInteger(n) && Math.abs(n) < 1e15) return String(n);
  const s = String(n);
  const m = /^(-?)(\d+)(?:\.(\d+))?e([-+])(\d+)$/.exec(s);
  if (!m) return s.includes('.') ? s : `${s}.0`;
  return `${m[1]}${m[2]}.${m[3] ?? '0'}e${m[4]}${m[5].padStart(2, '0')}`;
}

function scalar(v: unknown): string {
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') return pyyamlNumber(v);
  if (v === null) return 'null';
  const s = String(v);
  // Plain only where PyYAML reads a string and nothing in it is YAML syntax.
  if (/^[A-Za-z_./][A-Za-z0-9_./-]*$/.test(s) && pyyamlType(s) === 'str') return s;
  return JSON.stringify(s);
}

function lines(v: unknown, indent: string): string[] {
  if (Array.isArray(v)) {
    if (!v.length) return [`${indent}[]`];
    return v.flatMap((item) => {
      if (item && typeof item === 'object' && !Array.isArray(item)) {
        const inner = lines(item, `${indent}  `);
        return [`${indent}- ${inner[0].trimStart()}`, ...inner.slice(1)];
      }
      return [`${indent}- ${scalar(item)}`];
    });
  }
  if (v && typeof v === 'object') {
    return Object.entries(v as Record<string, unknown>).flatMap(([k, x]) => {
      if (x && typeof x === 'object') {
        if (Array.isArray(x) && !x.length) return [`${indent}${k}: []`];
        return [`${indent}${k}:`, ...lines(x, `${indent}  `)];
      }
      return [`${indent}${k}: ${scalar(x)}`];
    });
  }
  return [`${indent}${scalar(v)}`];
}

/** The YAML text of a map, with `comment` lines first. */
export function toYaml11(doc: Record<string, unknown>, comment?: string): string {
  const head = comment ? comment.split('\n').map((l) => `# ${l}`.trimEnd()) : [];
  return [...head, ...lines(doc, '')].join('\n') + '\n';
}

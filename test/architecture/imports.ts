// The project's import graph, read from the source (static imports and re-exports,
// `import type` included, `require(...)` and `import(...)` with a literal specifier),
// and the layering rules it must keep. Pure functions over {file -> specifiers}, so the
// rules can be checked on the real tree and on a made-up one.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

/** Project files (relative to the root, '/'-separated) -> the specifiers each imports. */
export type ImportGraph = Map<string, string[]>;

const SPECIFIER = /(?:^|[\s;}])(?:import|export)\s[^'"`;]*?from\s*['"]([^'"]+)['"]|(?:^|[\s;}])import\s*['"]([^'"]+)['"]|\brequire\(\s*['"]([^'"]+)['"]\s*\)|\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;

export function specifiersOf(source: string): string[] {
  // Comments may mention imports; strings are left alone (specifiers are strings).
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1');
  const out: string[] = [];
  for (const m of code.matchAll(SPECIFIER)) out.push(m[1] ?? m[2] ?? m[3] ?? m[4]);
  return out;
}

export function readGraph(root: string, folders: string[]): ImportGraph {
  const graph: ImportGraph = new Map();
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) { if (name !== 'node_modules') walk(p); }
      else if (/\.(ts|mts|cts)$/.test(name) && !name.endsWith('.d.ts')) graph.set(relative(root, p).split('\\').join('/'), specifiersOf(readFileSync(p, 'utf8')));
    }
  };
  for (const f of folders) walk(join(root, f));
  return graph;
}

/** The project file a relative specifier names (with its extension), or undefined for a package. */
export function resolveSpecifier(graph: ImportGraph, from: string, spec: string): string | undefined {
  if (!spec.startsWith('.')) return undefined;
  const base = resolve('/', dirname(from), spec).slice(1);
  for (const candidate of [base, `${base}.ts`, `${base}/index.ts`, base.replace(/\.js$/, '.ts')]) if (graph.has(candidate)) return candidate;
  return `${base}.ts`; // not in the scanned folders: still a project path, for the rules
}

export interface Violation { file: string; imports: string; rule: string }

const under = (file: string, folder: string) => file === folder || file.startsWith(`${folder}/`);

/** The layering rules (DEVELOPERS.md, "How we build"), each broken import once. */
export function layeringViolations(graph: ImportGraph): Violation[] {
  const out: Violation[] = [];
  for (const [file, specs] of graph) {
    for (const spec of specs) {
      const target = resolveSpecifier(graph, file, spec);
      const add = (rule: string) => out.push({ file, imports: target ?? spec, rule });
      if (under(file, 'server/engine') && target && under(target, 'server') && !under(target, 'server/engine')) {
        add('the engine imports nothing above it (server/config, http, cli, protocol, demo)');
      }
      if ((under(file, 'server') || under(file, 'language-server')) && /^vscode($|-languageclient)/.test(spec)) {
        add('nothing under server/ or language-server/ imports vscode');
      }
      if (under(file, 'language-server') && target && (under(target, 'extension') || under(target, 'webview'))) {
        add('the language server imports neither the extension nor the webview');
      }
      if (under(file, 'webview') && target && !under(target, 'webview') && target !== 'server/protocol.ts') {
        add('the webview imports only its own folder and server/protocol.ts');
      }
      if (!under(file, 'extension') && !under(file, 'test') && target && under(target, 'extension')) {
        add('only the extension imports the extension');
      }
    }
  }
  return out;
}

/** Every import circle among project files, each as the list of files around it. */
export function importCycles(graph: ImportGraph): string[][] {
  const edges = new Map<string, string[]>();
  for (const [file, specs] of graph) {
    edges.set(file, specs.map((s) => resolveSpecifier(graph, file, s)).filter((t): t is string => !!t && graph.has(t)));
  }
  // Tarjan's strongly connected components: a component of more than one file, or a file
  // that imports itself, is a circle.
  let index = 0;
  const idx = new Map<string, number>(), low = new Map<string, number>(), onStack = new Set<string>(), stack: string[] = [];
  const cycles: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index); low.set(v, index); index++;
    stack.push(v); onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!idx.has(w)) { visit(w); low.set(v, Math.min(low.get(v)!, low.get(w)!)); }
      else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const component: string[] = [];
      let w: string;
      do { w = stack.pop()!; onStack.delete(w); component.push(w); } while (w !== v);
      if (component.length > 1 || (edges.get(v) ?? []).includes(v)) cycles.push(component.sort());
    }
  };
  for (const v of edges.keys()) if (!idx.has(v)) visit(v);
  return cycles;
}

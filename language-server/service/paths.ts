// File-path completion for model.base, data.train, data.validation and output.dir: the
// entries of the folder typed so far, relative to the `.qlora` file's folder.
import { existsSync, readdirSync, type Dirent } from 'node:fs';
import { join } from 'node:path';
import { CompletionItemKind, type CompletionItem } from 'vscode-languageserver';
import { LineIndex, resolveAgainst, type PathKey } from '../../server/config';
import type { Span } from './context';

/** Entries listed at most, so that a huge folder cannot stall the server. */
const MAX_ENTRIES = 500;

const WANTED: Record<PathKey['target'], (name: string) => boolean> = {
  model: (name) => /\.bin$/i.test(name), // a llama2.c checkpoint may be named directly
  data: (name) => /\.(jsonl|json)$/i.test(name),
  folder: () => false,
};

export function pathCompletions(
  baseDir: string,
  typed: string,
  span: Span,
  target: PathKey['target'],
  lines: LineIndex,
): CompletionItem[] {
  const quote = /^['"]/.exec(typed)?.[0] ?? '';
  const written = typed.slice(quote.length);
  const slash = written.lastIndexOf('/');
  const folderPart = written.slice(0, slash + 1);
  const partial = written.slice(slash + 1);
  let entries: Dirent[];
  try {
    entries = readdirSync(resolveAgainst(baseDir, folderPart || '.'), { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1));
  } catch {
    return [];
  }
  const folder = resolveAgainst(baseDir, folderPart || '.');
  const start = span.start + quote.length + folderPart.length;
  const end = Math.max(start, quote ? Math.min(span.end, span.start + typed.length) : span.end);
  const range = lines.range(start, end);
  const items: CompletionItem[] = [];
  for (const e of entries) {
    if (items.length >= MAX_ENTRIES) break;
    if (e.name.startsWith('.') && !partial.startsWith('.')) continue;
    const isDir = e.isDirectory() || (e.isSymbolicLink() && isFolder(join(folder, e.name)));
    if (!isDir && !WANTED[target](e.name)) continue;
    const name = isDir ? `${e.name}/` : e.name;
    items.push({
      label: name,
      kind: isDir ? CompletionItemKind.Folder : CompletionItemKind.File,
      detail: isDir && target === 'model' && looksLikeModel(join(folder, e.name)) ? 'model folder' : undefined,
      textEdit: { range, newText: name },
      filterText: name,
      // Folders first, then files, each alphabetically.
      sortText: `${isDir ? 0 : 1}${e.name.toLowerCase()}`,
      // Going into a folder should list its entries straight away.
      ...(isDir ? { command: { title: 'List folder', command: 'editor.action.triggerSuggest' } } : {}),
    });
  }
  return items;
}

function isFolder(path: string): boolean {
  try {
    return readdirSync(path) !== undefined;
  } catch {
    return false;
  }
}

function looksLikeModel(dir: string): boolean {
  if (existsSync(join(dir, 'config.json'))) return true;
  try {
    return readdirSync(dir).some((n) => n.toLowerCase().endsWith('.bin'));
  } catch {
    return false;
  }
}

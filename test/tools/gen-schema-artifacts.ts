// Regenerates what is derived from the `.qlora` schema and kept in the tree: the key
// reference between README.md's schema-table markers and syntaxes/qlora.tmLanguage.json.
//   node --import tsx test/tools/gen-schema-artifacts.ts          write them
//   node --import tsx test/tools/gen-schema-artifacts.ts --check  exit 1 if either is stale
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../helpers/shared';
import { tmGrammarText, withReadmeTable } from './schemaArtifacts';

const targets = [
  { file: join(projectRoot, 'README.md'), generate: (current: string) => withReadmeTable(current) },
  { file: join(projectRoot, 'syntaxes', 'qlora.tmLanguage.json'), generate: () => tmGrammarText() },
];

const check = process.argv.includes('--check');
let stale = 0;
for (const t of targets) {
  let current = '';
  try {
    current = readFileSync(t.file, 'utf8');
  } catch {
    // a missing grammar is simply written
  }
  const wanted = t.generate(current);
  if (wanted === current) continue;
  if (check) {
    console.error(`stale: ${t.file}`);
    stale++;
  } else {
    writeFileSync(t.file, wanted);
    console.log(`wrote ${t.file}`);
  }
}
if (stale) {
  console.error('run: node --import tsx test/tools/gen-schema-artifacts.ts');
  process.exit(1);
}

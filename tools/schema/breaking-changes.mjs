// The breaking-change check of make schema-check (issue #6): graphql-inspector's diff of
// schema.graphqls as it was on the previous main against the one in the working tree.
// A breaking change fails the check unless intentional-breaking-changes.txt (beside this
// file) lists it with a reason; dangerous changes are printed and pass.
//
// Which schema is "the previous main": CI runs on a fresh clone of the new main, where
// the working tree equals HEAD and a submission may hold several commits, so HEAD~1 is
// not enough (a breaking commit followed by an unrelated one would slip through). The
// base is therefore the schema before its most recent change:
//   - the working tree's schema differs from HEAD's (a developer before committing):
//     the base is HEAD's schema;
//   - otherwise: the base is the schema in the first parent of the last commit on the
//     first-parent chain that changed schema.graphqls (the main it was merged into).
// In a shallow clone that commit's parent is missing: the history is deepened with
// `git fetch --deepen` until it is there (or the clone turns out to be complete). A
// schema that has no earlier version, or a checkout without git, has nothing to break.
// SCHEMA_BASE_REF=<commit> compares against that commit instead (e.g. origin/main).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CriticalityLevel, diff } from '@graphql-inspector/core';
import { buildSchema } from 'graphql';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const schemaFile = 'schema.graphqls';
const allowFile = join(here, 'intentional-breaking-changes.txt');

function git(...args) {
  return execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function tryGit(...args) {
  try {
    return git(...args);
  } catch {
    return null;
  }
}

// The base commit and a note on why it was chosen; null when there is nothing to compare.
function findBase(working) {
  if (process.env.SCHEMA_BASE_REF) {
    return { commit: process.env.SCHEMA_BASE_REF, why: 'SCHEMA_BASE_REF' };
  }
  if (tryGit('rev-parse', '--is-inside-work-tree')?.trim() !== 'true') {
    console.log('schema breaking changes: skipped, not a git checkout');
    return null;
  }
  const atHead = tryGit('show', `HEAD:${schemaFile}`);
  if (atHead === null) {
    console.log(`schema breaking changes: skipped, ${schemaFile} is not in HEAD yet`);
    return null;
  }
  if (atHead !== working) {
    return { commit: 'HEAD', why: 'the working tree changes the schema' };
  }
  for (let deepened = 0; ; deepened++) {
    const last = git('log', '-1', '--first-parent', '--format=%H', 'HEAD', '--', schemaFile).trim();
    if (tryGit('rev-parse', '--verify', '--quiet', `${last}^1`) !== null) {
      return { commit: `${last}^1`, why: `the schema last changed in ${last.slice(0, 12)}` };
    }
    const shallow = tryGit('rev-parse', '--is-shallow-repository')?.trim() === 'true';
    if (!shallow) {
      console.log(`schema breaking changes: skipped, ${schemaFile} has no earlier version`);
      return null;
    }
    if (deepened >= 20 || tryGit('fetch', '--quiet', '--deepen=50') === null) {
      console.error('schema breaking changes: shallow clone and its history cannot be fetched; ' +
        'clone with more history, or set SCHEMA_BASE_REF');
      process.exit(1);
    }
  }
}

// intentional-breaking-changes.txt: one "CHANGE_TYPE path reason..." per line, # comments.
function readAllowed() {
  const allowed = new Map();
  const bad = [];
  readFileSync(allowFile, 'utf8').split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') return;
    const [type, path, ...reason] = line.split(/\s+/);
    if (reason.length === 0) bad.push(`${allowFile}:${i + 1}: needs "CHANGE_TYPE path reason": ${raw}`);
    else allowed.set(`${type} ${path}`, reason.join(' '));
  });
  if (bad.length > 0) {
    console.error(bad.join('\n'));
    process.exit(1);
  }
  return allowed;
}

const working = readFileSync(join(root, schemaFile), 'utf8');
const base = findBase(working);
if (base === null) process.exit(0);

function build(source, where) {
  try {
    return buildSchema(source);
  } catch (err) {
    console.error(`schema breaking changes: ${schemaFile} ${where} is not a valid schema: ${err.message}`);
    process.exit(1);
  }
}

const before = build(git('show', `${base.commit}:${schemaFile}`), `at ${base.commit}`);
const changes = await diff(before, build(working, 'in the working tree'));
const allowed = readAllowed();
const key = (c) => `${c.type} ${c.path ?? '-'}`;
const breaking = changes.filter((c) => c.criticality.level === CriticalityLevel.Breaking);
const dangerous = changes.filter((c) => c.criticality.level === CriticalityLevel.Dangerous);
const unmarked = breaking.filter((c) => !allowed.has(key(c)));

console.log(`schema breaking changes: against ${base.commit} (${base.why}): ` +
  `${changes.length} changes, ${breaking.length} breaking (${breaking.length - unmarked.length} marked intentional), ` +
  `${dangerous.length} dangerous`);
for (const c of dangerous) console.log(`  dangerous: ${c.message}${c.criticality.reason ? ` (${c.criticality.reason})` : ''}`);
for (const c of breaking) {
  if (allowed.has(key(c))) console.log(`  intentional: ${c.message}: ${allowed.get(key(c))}`);
}
if (unmarked.length > 0) {
  for (const c of unmarked) console.error(`  BREAKING: ${c.message}${c.criticality.reason ? ` (${c.criticality.reason})` : ''}`);
  console.error('\nClients of the previous schema would break. Keep the old names (extend, deprecate with ' +
    '@deprecated), or, if the break is intended, add a line per change with its reason to ' +
    'tools/schema/intentional-breaking-changes.txt:');
  for (const c of unmarked) console.error(`  ${key(c)} <why this break is acceptable>`);
  process.exit(1);
}

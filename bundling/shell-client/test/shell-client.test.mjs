// The reference shell client (index.js) against the real sidecar, and its failure paths against a
// stand-in process (test/fixtures/fake-sidecar.mjs).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { SidecarStartError, SseParser, startSidecar } from '../index.js';
import {
  captureConsole, configureModel, here, isGone, processesMentioning, pythonPath, repoRoot, startFakeLlm,
  startRealSidecar, tempDir, userMessage, waitFor, withTimeout,
} from '../test-support/helpers.mjs';

const FAKE = join(here, 'fake-sidecar.mjs');
// A generous bound per stop() stage, so a slow machine still sees the clean exit code 0.
const STOP_MS = 15_000;

/** Start the stand-in sidecar in `mode`. */
function startFake(mode, opts = {}) {
  return startSidecar({
    command: process.execPath,
    args: [FAKE],
    dataDir: opts.dataDir ?? '/nonexistent-fake-data-dir',
    handshakeTimeoutMs: 5000,
    ...opts,
    env: { FAKE_SIDECAR_MODE: mode, SIDECAR_TOKEN: undefined, ...(opts.env ?? {}) },
  });
}

/** Linux: pids of every descendant of `pid` (via /proc/PID/stat ppid). */
function descendants(pid) {
  if (process.platform !== 'linux') return [];
  const children = new Map();
  for (const { pid: p } of processesMentioning('')) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(p);
    } catch { /* gone */ }
  }
  const out = [];
  const walk = (p) => { for (const c of children.get(p) ?? []) { out.push(c); walk(c); } };
  walk(pid);
  return out;
}

describe('reference client with the real sidecar', () => {
  const tmp = tempDir();
  /** @type {Awaited<ReturnType<typeof startFakeLlm>>} */ let fake;
  /** @type {import('../index.js').Sidecar[]} */ const started = [];

  before(async () => { fake = await startFakeLlm(tmp.dir); });
  after(async () => {
    await Promise.allSettled([...started.map((s) => s.stop({ timeoutMs: 3000 })), fake?.stop()]);
    tmp.cleanup();
  });

  test('startSidecar → agent run → change on subscribeEvents → stop(): every process gone', async () => {
    const dataDir = join(tmp.dir, `data-${randomUUID()}`);
    const sidecar = await startRealSidecar(tmp.dir, { dataDir });
    started.push(sidecar);
    assert.equal(sidecar.handshake.protocol, 'sidecar/1');
    assert.equal(sidecar.baseUrl, `http://127.0.0.1:${sidecar.port}`);
    assert.ok(sidecar.token.length >= 32);
    assert.equal((await sidecar.request('GET', '/v1/health')).status, 'ok');
    const unauthorized = await fetch(`${sidecar.baseUrl}/v1/health`);
    assert.equal(unauthorized.status, 401);

    /** @type {any[]} */ const changes = [];
    /** @type {any[]} */ const events = [];
    /** @type {Error[]} */ const streamErrors = [];
    const unsubscribe = sidecar.subscribeEvents({
      onChange: (c) => changes.push(c),
      onEvent: (m) => events.push(m),
      onError: (e) => streamErrors.push(e),
    });
    await withTimeout(unsubscribe.ready, 10_000, 'the events stream to open');

    await configureModel(sidecar, fake);
    await fake.script(
      { type: 'tool_calls', calls: [{ name: 'create_task', arguments: { title: 'Call the plumber' } }] },
      { type: 'text', text: 'Done.' },
    );
    const agent = sidecar.agent({ threadId: `t-${randomUUID()}` });
    agent.addMessage(userMessage('remind me to call the plumber'));
    /** @type {any[]} */ const runEvents = [];
    const [, consoleOutput] = await captureConsole(() => withTimeout(
      agent.runAgent({ forwardedProps: { mode: 'home' } }, { onEvent: ({ event }) => { runEvents.push(event); } }),
      30_000, 'the agent run'));
    assert.deepEqual(consoleOutput, []);
    assert.equal(runEvents.at(-1).type, 'RUN_FINISHED');
    const [inserted] = runEvents.at(-2).value;
    assert.equal(inserted.entity, 'tasks');

    const change = await waitFor(() => changes.find((c) => c.entity === 'tasks' && c.id === inserted.id), 10_000, 'the change event');
    assert.equal(change.op, 'insert');
    assert.equal(change.seq, inserted.seq);
    assert.equal(change.fields.title, 'Call the plumber');
    const changeMsg = events.find((m) => m.event === 'change' && m.json.id === inserted.id);
    assert.equal(changeMsg.id, String(change.seq));
    await waitFor(() => events.some((m) => m.event === 'run.status' && m.json.status === 'finished'), 10_000, 'run.status finished');
    assert.equal(unsubscribe.lastEventId(), change.seq);

    // Resuming with `after` replays the backlog exactly once.
    const replayed = [];
    const again = sidecar.subscribeEvents({ after: 0, onChange: (c) => replayed.push(c) });
    await again.ready;
    await waitFor(() => replayed.length >= 1, 5000, 'the backlog');
    const task2 = await sidecar.request('POST', '/v1/tasks', { title: 'second' });
    await waitFor(() => replayed.some((c) => c.id === task2.id) && changes.some((c) => c.id === task2.id), 5000, 'the live change');
    assert.deepEqual(replayed.map((c) => c.seq), [change.seq, change.seq + 1]);
    again();
    await withTimeout(again.closed, 5000, 'the unsubscribed stream to close');

    // Every process of this sidecar, before stop.
    const tree = [sidecar.pid, ...descendants(sidecar.pid)];
    assert.ok(processesMentioning(dataDir).length >= 1 || process.platform !== 'linux');

    const stopStarted = Date.now();
    const code = await withTimeout(sidecar.stop({ timeoutMs: STOP_MS }), 40_000, 'stop()');
    assert.equal(code, 0, `exit code ${code}\n${sidecar.stderrTail()}`);
    assert.ok(Date.now() - stopStarted < 5000, `stdin EOF → exit took ${Date.now() - stopStarted} ms (DESIGN: about 5 s at most)`);
    await withTimeout(unsubscribe.closed, 5000, 'stop() to close the subscriptions');
    assert.deepEqual(streamErrors.filter((e) => !/ended|abort/i.test(String(e?.message))), []);
    for (const pid of tree) assert.ok(isGone(pid), `process ${pid} is still there after stop()`);
    assert.ok(isGone(sidecar.handshake.pid));
    assert.deepEqual(processesMentioning(dataDir), [], 'a process still mentions the data dir');
    assert.equal(await sidecar.stop(), 0, 'stop() is idempotent');
  });
});

describe('reference client with the real sidecar, token from the shell', () => {
  const tmp = tempDir();
  const dataDir = join(tmp.dir, 'data');
  /** @type {Awaited<ReturnType<typeof startFakeLlm>>} */ let fake;
  /** @type {import('../index.js').Sidecar} */ let sidecar;

  before(async () => {
    [fake, sidecar] = await Promise.all([startFakeLlm(tmp.dir), startRealSidecar(tmp.dir, { dataDir, token: true })]);
  });
  after(async () => {
    await Promise.allSettled([sidecar?.stop({ timeoutMs: 3000 }), fake?.stop()]);
    tmp.cleanup();
  });

  test('a token handed over in SIDECAR_TOKEN: the handshake carries none, the client uses ours', async () => {
    assert.equal(sidecar.handshake.token, undefined);
    assert.match(sidecar.token, /^[A-Za-z0-9_-]{43}$/);
    assert.equal((await sidecar.request('GET', '/v1/health')).status, 'ok');
    const wrong = await fetch(`${sidecar.baseUrl}/v1/health`, { headers: { Authorization: 'Bearer nope' } });
    assert.equal(wrong.status, 401);
  });

  test('a second sidecar on the same data dir: SidecarStartError already_running, nothing left behind', async () => {
    const err = await startRealSidecar(tmp.dir, { dataDir }).then(() => null, (e) => e);
    assert.ok(err instanceof SidecarStartError, String(err));
    assert.equal(err.code, 'already_running');
    assert.equal(err.exitCode, 3);
    await waitFor(() => processesMentioning(dataDir).length === 1, 5000, 'only the first sidecar to remain');
  });

  test('stop() while a run streams: the client gets the final RUN_FINISHED (cancelled)', async () => {
    await configureModel(sidecar, fake);
    await fake.script({ type: 'text', text: 'a b c d e f g h i j', n_chunks: 10, chunk_delay_s: 0.3 });
    const agent = sidecar.agent({ threadId: 't-stop' });
    agent.addMessage(userMessage('talk'));
    const types = [];
    let stopping;
    const [, consoleOutput] = await captureConsole(() => withTimeout(agent.runAgent({}, {
      onEvent: ({ event }) => {
        types.push(event.type === 'RUN_FINISHED' ? `RUN_FINISHED:${event.outcome?.type}` : event.type);
        if (event.type === 'TEXT_MESSAGE_CONTENT') stopping ??= sidecar.stop({ timeoutMs: STOP_MS });
      },
    }), 30_000, 'the run'));
    assert.deepEqual(consoleOutput, []);
    assert.equal(types.at(-1), 'RUN_FINISHED:cancelled', types.join(' '));
    assert.equal(await stopping, 0);
    assert.deepEqual(processesMentioning(dataDir), []);
  });
});

describe('startSidecar failure paths (stand-in process)', () => {
  const tmp = tempDir();
  after(() => tmp.cleanup());

  const expectStartError = async (promise, code) => {
    const err = await promise.then(() => null, (e) => e);
    assert.ok(err instanceof SidecarStartError, `expected SidecarStartError, got ${err}`);
    assert.equal(err.code, code, err.message);
    return err;
  };

  test('an {"event":"error"} line rejects with its code, message and exit code', async () => {
    const err = await expectStartError(startFake('error'), 'already_running');
    assert.equal(err.message, 'another sidecar holds this data dir');
    assert.equal(err.exitCode, 3);
  });

  test('an exit before the handshake rejects with the exit code and the stderr tail', async () => {
    const err = await expectStartError(startFake('exit'), 'exited');
    assert.equal(err.exitCode, 7);
    assert.match(err.stderr, /cannot start/);
  });

  test('a command that does not exist rejects with spawn_failed', async () => {
    await expectStartError(startSidecar({ command: join(tmp.dir, 'no-such-sidecar'), dataDir: tmp.dir }), 'spawn_failed');
  });

  for (const [mode, code] of [['garbage', 'bad_handshake'], ['protocol', 'protocol_mismatch'], ['no-token', 'bad_handshake'], ['silent', 'handshake_timeout']]) {
    test(`${mode}: rejects with ${code} and kills the process`, async () => {
      const marker = join(tmp.dir, `marker-${mode}-${randomUUID()}`);
      await expectStartError(startFake(mode, { dataDir: marker, handshakeTimeoutMs: 1500 }), code);
      await waitFor(() => processesMentioning(marker).length === 0, 3000, 'the stand-in to be killed');
    });
  }

  test('stop() escalates to SIGTERM then SIGKILL, and the process group (grandchildren) goes too', async () => {
    const pidFile = join(tmp.dir, `grandchild-${randomUUID()}`);
    const sidecar = await startFake('stubborn', { env: { FAKE_SIDECAR_CHILD_PID_FILE: pidFile } });
    await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8'), 5000, 'the grandchild');
    const grandchild = Number(readFileSync(pidFile, 'utf8'));
    assert.ok(!isGone(grandchild));
    const t0 = Date.now();
    const code = await withTimeout(sidecar.stop({ timeoutMs: 300 }), 10_000, 'stop()');
    assert.equal(code, null, 'killed by a signal');
    assert.ok(Date.now() - t0 >= 550, 'waited for stdin EOF, then SIGTERM');
    assert.equal((await sidecar.exited).signal, 'SIGKILL');
    assert.ok(isGone(sidecar.pid));
    await waitFor(() => isGone(grandchild), 3000, 'the grandchild to be killed');
  });

  test('stop() resolves with the exit code when SIGTERM ends it', async () => {
    const sidecar = await startFake('term-only');
    assert.equal(await sidecar.stop({ timeoutMs: 300 }), 5);
  });

  test('stop() after a clean exit still ends what the process left in its group', async () => {
    const pidFile = join(tmp.dir, `grandchild-${randomUUID()}`);
    const sidecar = await startFake('leave-child', { env: { FAKE_SIDECAR_CHILD_PID_FILE: pidFile } });
    await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8'), 5000, 'the grandchild');
    const grandchild = Number(readFileSync(pidFile, 'utf8'));
    assert.equal(await sidecar.stop({ timeoutMs: 500 }), 0);
    await waitFor(() => isGone(grandchild), 3000, 'the leftover grandchild to be killed');
  });

  test('subscribeEvents: after, reconnect with Last-Event-ID, every change once and in order', async () => {
    const sidecar = await startFake('ready');
    try {
      const seqs = [];
      const others = [];
      const errors = [];
      const unsubscribe = sidecar.subscribeEvents({
        after: 0,
        onChange: (c) => seqs.push(c.seq),
        onEvent: (m) => { if (m.event !== 'change') others.push(m.event); },
        onError: (e) => errors.push(e),
      });
      await unsubscribe.ready;
      await waitFor(() => seqs.length >= 4, 5000, 'all four changes');
      unsubscribe();
      await unsubscribe.closed;
      assert.deepEqual(seqs, [1, 2, 3, 4]);
      assert.deepEqual(others, ['run.status']);
      assert.ok(errors.length >= 1, 'the drop was reported');
      const requests = await (await fetch(`${sidecar.baseUrl}/_requests`)).json();
      assert.deepEqual(requests.slice(0, 2).map((r) => [r.path, r.lastEventId]), [['/v1/events?after=0', null], ['/v1/events', '2']]);
      assert.ok(requests.every((r) => r.authorization === `Bearer ${sidecar.token}`));
    } finally {
      await sidecar.stop();
    }
  });

  test('subscribeEvents: a 4xx answer is fatal (ready rejects, no retry loop)', async () => {
    const sidecar = await startFake('ready', { env: { FAKE_SIDECAR_ACCEPT_TOKEN: 'another-token' } });
    try {
      const errors = [];
      const unsubscribe = sidecar.subscribeEvents({ onError: (e) => errors.push(e), retryMs: 20 });
      const err = await unsubscribe.ready.then(() => null, (e) => e);
      assert.equal(err?.status, 401);
      assert.equal(err?.code, 'unauthorized');
      await withTimeout(unsubscribe.closed, 2000, 'the stream to give up');
      await new Promise((r) => setTimeout(r, 200));
      const requests = await (await fetch(`${sidecar.baseUrl}/_requests`)).json();
      assert.equal(requests.length, 1, 'no retry after a 401');
      assert.equal(errors.length, 1);
    } finally {
      await sidecar.stop();
    }
  });
});

describe('SseParser', () => {
  test('LF, CR and CRLF line ends, split chunks, multi-line data, comments, ids that persist', () => {
    const out = [];
    const p = new SseParser((m) => out.push(m));
    p.feed(': comment\r');
    p.feed('\nid: 5\r\nevent: change\ndata: {"a":\ndata: 1}\r\r');
    p.feed('data: plain\n\n');
    assert.deepEqual(out, [
      { event: 'change', data: '{"a":\n1}', id: '5', json: { a: 1 } },
      { event: 'message', data: 'plain', id: '5', json: undefined },
    ]);
  });
});

test('the environment the tests use', () => {
  assert.ok(existsSync(join(repoRoot, 'sidecar', '__main__.py')), repoRoot);
  assert.ok(pythonPath());
});

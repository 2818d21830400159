// AG-UI conformance of the real sidecar, checked by the official client (@ag-ui/client).
//
// `HttpAgent.runAgent` validates every event (schema enforcement, then order verification:
// RUN_STARTED first, messages and tool calls opened before use and closed before RUN_FINISHED,
// nothing after the terminal event) and reports problems by throwing or through console.warn /
// console.error. Each run here fails on any client error and on any console output of the client.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';

import { HttpAgent, EventType } from '@ag-ui/client';

import {
  captureConsole, configureModel, startFakeLlm, startRealSidecar, tempDir, userMessage, waitFor, withTimeout,
} from '../test-support/helpers.mjs';

const RUN_TIMEOUT_MS = 30_000;

/**
 * Run `agent` once and record everything the client reports.
 * @param {HttpAgent} agent
 * @param {any} [params]
 * @param {(event: any, agent: HttpAgent) => void} [onEach]
 */
async function recordRun(agent, params = {}, onEach) {
  /** @type {any[]} */ const events = [];
  /** @type {Error[]} */ const failures = [];
  /** @type {any[]} */ const runErrors = [];
  /** @type {any[]} */ const finished = [];
  const subscriber = {
    onEvent: ({ event }) => { events.push(event); onEach?.(event, agent); },
    onRunFailed: ({ error }) => { failures.push(error); },
    onRunErrorEvent: ({ event }) => { runErrors.push(event); },
    onRunFinishedEvent: (p) => { finished.push({ outcome: p.outcome, interrupts: p.interrupts, event: p.event }); },
  };
  let thrown;
  const [result, consoleOutput] = await captureConsole(async () => {
    try {
      return await withTimeout(agent.runAgent({ forwardedProps: { mode: 'home' }, ...params }, subscriber), RUN_TIMEOUT_MS, 'runAgent');
    } catch (err) {
      thrown = err;
      return undefined;
    }
  });
  return { events, failures, runErrors, finished, result, thrown, consoleOutput, types: events.map((e) => e.type) };
}

/** The client accepted the run without complaint. */
function assertClean(rec) {
  assert.equal(rec.thrown, undefined, `runAgent threw: ${rec.thrown?.stack ?? rec.thrown}\nevents: ${rec.types.join(' ')}`);
  assert.deepEqual(rec.failures.map(String), [], 'onRunFailed was called');
  assert.deepEqual(rec.consoleOutput, [], 'the AG-UI client printed warnings or errors');
}

/** DESIGN §4: … then CUSTOM mutations, then exactly one terminal event, last. */
function assertTerminal(rec, type) {
  const terminals = rec.types.filter((t) => t === EventType.RUN_FINISHED || t === EventType.RUN_ERROR);
  assert.deepEqual(terminals, [type], `terminal events: ${rec.types.join(' ')}`);
  assert.equal(rec.types.at(-1), type);
  assert.equal(rec.types[0], EventType.RUN_STARTED);
  const mutations = rec.events.at(-2);
  assert.equal(mutations.type, EventType.CUSTOM);
  assert.equal(mutations.name, 'mutations');
  return rec.events.at(-1);
}

describe('the official client enforces and verifies (sanity, no sidecar)', () => {
  /** An HttpAgent whose fetch answers `events` as an SSE stream. */
  const agentAnswering = (/** @type {any[]} */ events) => new HttpAgent({
    url: 'http://127.0.0.1:9/never',
    fetch: async () => new Response(events.map((e) => `data: ${JSON.stringify(e)}\n\n`).join(''), {
      headers: { 'Content-Type': 'text/event-stream' },
    }),
  });

  test('an out-of-order stream makes runAgent reject', async () => {
    const agent = agentAnswering([
      { type: 'RUN_STARTED', threadId: 't', runId: 'r' },
      { type: 'TEXT_MESSAGE_CONTENT', messageId: 'nope', delta: 'x' },
      { type: 'RUN_FINISHED', threadId: 't', runId: 'r' },
    ]);
    const rec = await recordRun(agent);
    assert.ok(rec.thrown, 'verification is off: an unopened message was accepted');
    assert.match(String(rec.thrown.message), /TEXT_MESSAGE_CONTENT/);
  });

  test('an unknown field is reported on console.warn (so the capture would catch one)', async () => {
    const agent = agentAnswering([
      { type: 'RUN_STARTED', threadId: 't', runId: 'r', bogusField: 1 },
      { type: 'RUN_FINISHED', threadId: 't', runId: 'r' },
    ]);
    const rec = await recordRun(agent);
    assert.equal(rec.thrown, undefined);
    assert.ok(rec.consoleOutput.some((m) => m.includes('bogusField')), rec.consoleOutput.join('\n'));
  });
});

describe('AG-UI conformance of the sidecar (real process, @ag-ui/client)', () => {
  const tmp = tempDir();
  /** @type {import('../index.js').Sidecar} */ let sidecar;
  /** @type {Awaited<ReturnType<typeof startFakeLlm>>} */ let fake;

  /** @type {Promise<unknown> | undefined} */ let modelConfigured;
  /** Point the sidecar at the fake LLM (once), then queue `replies`. */
  const script = async (/** @type {any[]} */ ...replies) => {
    modelConfigured ??= configureModel(sidecar, fake);
    await modelConfigured;
    await fake.script(...replies);
  };

  before(async () => {
    [sidecar, fake] = await Promise.all([startRealSidecar(tmp.dir), startFakeLlm(tmp.dir)]);
  });

  after(async () => {
    await Promise.allSettled([sidecar?.stop(), fake?.stop()]);
    tmp.cleanup();
  });

  /** A plain official HttpAgent (not the reference client's subclass) on the runs endpoint. */
  const newAgent = (threadId = `t-${randomUUID()}`) => new HttpAgent({
    url: `${sidecar.baseUrl}/v1/agent/runs`,
    headers: { Authorization: `Bearer ${sidecar.token}` },
    threadId,
  });

  // First, while no model is configured (tests in a suite run in order).
  test('(d) a run without a model is a RUN_ERROR with code model_not_configured', async () => {
    assert.equal(modelConfigured, undefined, '(d) must run before a model is configured');
    const agent = newAgent();
    agent.addMessage(userMessage('hello'));
    const rec = await recordRun(agent);
    assertClean(rec);
    const final = assertTerminal(rec, EventType.RUN_ERROR);
    assert.equal(final.code, 'model_not_configured');
    assert.match(final.message, /\/v1\/settings\/model/);
    assert.equal(rec.runErrors.length, 1);
    assert.equal(rec.runErrors[0].code, 'model_not_configured');
    assert.equal(rec.finished.length, 0);
  });

  test('(a) a tool-using run: tool call events, the task exists, mutations lists the insert', async () => {
    await script(
      { type: 'tool_calls', calls: [{ name: 'create_task', arguments: { title: 'Buy milk', priority: 'high', due_date: '2026-12-03' } }] },
      { type: 'text', text: 'Created <task>[it]</task> for you.', n_chunks: 4 },
    );
    const agent = newAgent();
    agent.addMessage(userMessage('remind me to buy milk'));
    const rec = await recordRun(agent);
    assertClean(rec);
    const final = assertTerminal(rec, EventType.RUN_FINISHED);
    assert.equal(final.outcome?.type ?? 'success', 'success');
    assert.equal(rec.finished.length, 1);
    for (const t of ['TOOL_CALL_START', 'TOOL_CALL_ARGS', 'TOOL_CALL_END', 'TOOL_CALL_RESULT', 'TEXT_MESSAGE_START', 'TEXT_MESSAGE_END']) {
      assert.ok(rec.types.includes(t), `no ${t} in ${rec.types.join(' ')}`);
    }
    assert.equal(rec.events[0].protocolVersion, '1.0');

    const tasks = await sidecar.request('GET', '/v1/tasks?q=milk');
    assert.equal(tasks.total, 1);
    const task = tasks.items[0];
    assert.equal(task.title, 'Buy milk');
    assert.equal(task.priority, 'high');
    const mutations = rec.events.at(-2).value;
    assert.deepEqual(mutations.map((m) => [m.entity, m.op, m.id]), [['tasks', 'insert', task.id]]);

    // The client assembled the conversation from the events.
    const start = rec.events.find((e) => e.type === 'TOOL_CALL_START');
    const result = rec.events.find((e) => e.type === 'TOOL_CALL_RESULT');
    assert.equal(result.toolCallId, start.toolCallId);
    assert.match(result.content, new RegExp(task.id));
    const callMsg = agent.messages.find((m) => m.role === 'assistant' && m.toolCalls?.length);
    assert.ok(callMsg, JSON.stringify(agent.messages));
    assert.equal(callMsg.toolCalls[0].function.name, 'create_task');
    assert.deepEqual(JSON.parse(callMsg.toolCalls[0].function.arguments), { title: 'Buy milk', priority: 'high', due_date: '2026-12-03' });
    assert.ok(agent.messages.some((m) => m.role === 'tool' && m.toolCallId === start.toolCallId));
    assert.equal(agent.messages.at(-1).role, 'assistant');
    assert.equal(agent.messages.at(-1).content, 'Created <task>[it]</task> for you.');

    // A second run on the same thread: the client sends the whole conversation back (assistant
    // tool-call message, tool message, assistant text, new user message); the sidecar takes the
    // new user message only.
    await script({ type: 'text', text: 'Nothing else to do.', n_chunks: 2 });
    agent.addMessage(userMessage('anything else?'));
    const again = await recordRun(agent);
    assertClean(again);
    assertTerminal(again, EventType.RUN_FINISHED);
    assert.equal(agent.messages.at(-1).content, 'Nothing else to do.');
    const sent = (await fake.requests()).at(-1).body.messages;
    const textOf = (m) => (typeof m.content === 'string' ? m.content : (m.content ?? []).map((p) => p.text ?? '').join(''));
    const userTexts = sent.filter((m) => m.role === 'user').map(textOf).filter((t) => !t.startsWith('<system-reminder>'));
    assert.deepEqual(userTexts, ['remind me to buy milk', 'anything else?'], 'each user message reaches the model once');
    const history = await sidecar.request('GET', `/v1/agent/threads/${agent.threadId}/history`);
    assert.deepEqual(history.runs.map((r) => r.status), ['finished', 'finished']);
  });

  test('(b) a run cancelled mid-stream ends with RUN_FINISHED outcome cancelled, no client error', async () => {
    await script({ type: 'text', text: 'one two three four five six seven eight nine ten', n_chunks: 10, chunk_delay_s: 0.3 });
    const agent = newAgent();
    agent.addMessage(userMessage('talk slowly'));
    const runId = randomUUID();
    let cancelled;
    const rec = await recordRun(agent, { runId }, (event) => {
      if (event.type === 'TEXT_MESSAGE_CONTENT' && cancelled === undefined) {
        cancelled = sidecar.cancelRun(runId);
      }
    });
    assertClean(rec);
    assert.equal(await cancelled, true);
    const final = assertTerminal(rec, EventType.RUN_FINISHED);
    assert.equal(final.outcome?.type, 'cancelled');
    assert.equal(rec.finished[0].outcome, 'cancelled');
    const text = rec.events.filter((e) => e.type === 'TEXT_MESSAGE_CONTENT').map((e) => e.delta).join('');
    assert.ok(text.length > 0 && text.length < 49, `partial text expected, got ${JSON.stringify(text)}`);
    assert.ok(rec.types.includes('TEXT_MESSAGE_END'), 'the open text message is closed before RUN_FINISHED');
    const history = await sidecar.request('GET', `/v1/agent/threads/${agent.threadId}/history`);
    assert.equal(history.runs.at(-1).status, 'cancelled');
  });

  test('(b2) abortRun on the reference agent drops the stream and cancels the run on the sidecar', async () => {
    await script(
      { type: 'text', text: 'a b c d e f g h i j', n_chunks: 10, chunk_delay_s: 0.3 },
      { type: 'text', text: 'next run works', n_chunks: 1 },
    );
    const agent = sidecar.agent({ threadId: `t-${randomUUID()}` });
    agent.addMessage(userMessage('talk slowly'));
    const runId = randomUUID();
    const rec = await recordRun(agent, { runId }, (event, a) => {
      if (event.type === 'TEXT_MESSAGE_CONTENT') a.abortRun();
    });
    assertClean(rec); // an abort is not an error for the client
    assert.ok(!rec.types.includes('RUN_FINISHED'), 'the stream was dropped before its end');
    await waitFor(async () => {
      const h = await sidecar.request('GET', `/v1/agent/threads/${agent.threadId}/history`);
      return h.runs.at(-1)?.status === 'cancelled';
    }, 10_000, 'the aborted run to be cancelled on the sidecar');
    // The thread is free again: a new run is not refused with 409 run_active.
    agent.addMessage(userMessage('again'));
    const next = await recordRun(agent);
    assertClean(next);
    assertTerminal(next, EventType.RUN_FINISHED);
  });

  test('(c) a delete asks first: interrupt outcome, then a resumed run that approves deletes the task', async () => {
    const task = await sidecar.request('POST', '/v1/tasks', { title: 'Old task' });
    const callId = `call-${randomUUID().slice(0, 8)}`;
    await script(
      { type: 'tool_calls', calls: [{ name: 'delete_task', arguments: { task_id: task.id }, id: callId }] },
      { type: 'text', text: 'Deleted it.' },
    );
    const agent = newAgent();
    agent.addMessage(userMessage('delete the old task'));
    const first = await recordRun(agent);
    assertClean(first);
    const final = assertTerminal(first, EventType.RUN_FINISHED);
    assert.equal(final.outcome.type, 'interrupt');
    assert.equal(first.finished[0].outcome, 'interrupt');
    const [interrupt] = final.outcome.interrupts;
    assert.equal(interrupt.reason, 'tool_approval');
    assert.equal(interrupt.toolCallId, callId);
    assert.equal(interrupt.metadata.toolName, 'delete_task');
    assert.deepEqual(agent.pendingInterrupts.map((i) => i.id), [interrupt.id]);
    assert.equal((await sidecar.request('GET', `/v1/tasks/${task.id}`)).title, 'Old task'); // not yet

    // The client refuses a new run that leaves the interrupt unanswered …
    const unanswered = await recordRun(agent);
    assert.match(String(unanswered.thrown?.message), /pending interrupt/);
    // … and resumes with the decision.
    const second = await recordRun(agent, { resume: [{ interruptId: interrupt.id, status: 'resolved', payload: { approved: true } }] });
    assertClean(second);
    const done = assertTerminal(second, EventType.RUN_FINISHED);
    assert.equal(done.outcome?.type ?? 'success', 'success');
    assert.deepEqual(agent.pendingInterrupts, []);
    assert.ok(second.types.includes('TOOL_CALL_RESULT'));
    assert.deepEqual(second.events.at(-2).value.map((m) => [m.entity, m.op, m.id]), [['tasks', 'delete', task.id]]);
    const gone = await sidecar.fetch(`/v1/tasks/${task.id}`);
    assert.equal(gone.status, 404);
  });

  test('(c2) a resumed run that rejects keeps the task', async () => {
    const task = await sidecar.request('POST', '/v1/tasks', { title: 'Keep me' });
    await script(
      { type: 'tool_calls', calls: [{ name: 'delete_task', arguments: { task_id: task.id } }] },
      { type: 'text', text: 'OK, I kept it.' },
    );
    const agent = newAgent();
    agent.addMessage(userMessage('delete it'));
    const first = await recordRun(agent);
    assertClean(first);
    const [interrupt] = assertTerminal(first, EventType.RUN_FINISHED).outcome.interrupts;
    const second = await recordRun(agent, { resume: [{ interruptId: interrupt.id, status: 'resolved', payload: { approved: false } }] });
    assertClean(second);
    assertTerminal(second, EventType.RUN_FINISHED);
    assert.deepEqual(second.events.at(-2).value, []);
    assert.equal((await sidecar.request('GET', `/v1/tasks/${task.id}`)).title, 'Keep me');
  });

  // A shell restarted while a confirmation was pending has a fresh HttpAgent that does not know
  // the interrupt (the client only guards its own pendingInterrupts), so it may send a new user
  // message instead of `resume`.
  test('a new message on a thread whose confirmation is pending is refused with 409 interrupt_pending', async () => {
    const task = await sidecar.request('POST', '/v1/tasks', { title: 'Pending' });
    await script(
      { type: 'tool_calls', calls: [{ name: 'delete_task', arguments: { task_id: task.id } }] },
      { type: 'text', text: 'Due today: nothing.' },
    );
    const threadId = `t-${randomUUID()}`;
    const first = newAgent(threadId);
    first.addMessage(userMessage('delete it'));
    assertClean(await recordRun(first));
    assert.equal(first.pendingInterrupts.length, 1);
    const restarted = newAgent(threadId); // the app was restarted: no pendingInterrupts
    restarted.setMessages(first.messages);
    restarted.addMessage(userMessage('never mind, what is due today?'));
    const rec = await recordRun(restarted);
    assert.equal(rec.events.length, 0, 'no run was started');
    assert.ok(rec.thrown || rec.failures.length, 'the client saw the refusal');
    assert.match(String(rec.thrown ?? rec.failures[0]), /409|interrupt_pending/);
    // The pending confirmation is intact: answering it still works.
    const answer = await recordRun(restarted, { resume: [{ interruptId: first.pendingInterrupts[0].id, status: 'resolved', payload: { approved: false } }] });
    assertClean(answer);
    assertTerminal(answer, EventType.RUN_FINISHED);
  });

  test('floating mode: CUSTOM domain right after RUN_STARTED', async () => {
    await script({ type: 'text', text: 'Your notes.' });
    const agent = newAgent();
    agent.addMessage(userMessage('summarise'));
    const rec = await recordRun(agent, { forwardedProps: { mode: 'floating', scope: { type: 'note' } } });
    assertClean(rec);
    assert.equal(rec.events[1].type, 'CUSTOM');
    assert.equal(rec.events[1].name, 'domain');
    assert.equal(rec.events[1].value, 'notes');
    assertTerminal(rec, EventType.RUN_FINISHED);
  });

  test('(e) a client-side tool: the call ends the run, the next run carries its result', async () => {
    const openPage = {
      name: 'open_page', description: 'Open a page of the app for the user.',
      parameters: { type: 'object', properties: { page: { type: 'string' } }, required: ['page'] },
    };
    const callId = `ct-${randomUUID().slice(0, 8)}`;
    await script(
      { type: 'tool_calls', calls: [{ name: 'open_page', arguments: { page: 'calendar' }, id: callId }] },
      { type: 'text', text: 'The calendar is open.' },
    );
    const agent = newAgent();
    agent.addMessage(userMessage('show my calendar'));
    const first = await recordRun(agent, { tools: [openPage] });
    assertClean(first);
    assert.equal(assertTerminal(first, EventType.RUN_FINISHED).outcome?.type ?? 'success', 'success');
    assert.ok(first.types.includes('TOOL_CALL_END') && !first.types.includes('TOOL_CALL_RESULT'), first.types.join(' '));
    const call = agent.messages.find((m) => m.role === 'assistant' && m.toolCalls?.some((c) => c.id === callId));
    assert.ok(call, JSON.stringify(agent.messages));
    assert.equal(call.toolCalls[0].function.name, 'open_page');
    // The shell executes it and sends the result as a tool message.
    agent.addMessage({ id: randomUUID(), role: 'tool', toolCallId: callId, content: 'opened calendar' });
    const second = await recordRun(agent, { tools: [openPage] });
    assertClean(second);
    assertTerminal(second, EventType.RUN_FINISHED);
    assert.equal(agent.messages.at(-1).content, 'The calendar is open.');
    const sent = (await fake.requests()).at(-1).body.messages;
    assert.equal(sent.at(-1).role, 'tool');
    assert.equal(sent.at(-1).tool_call_id, callId);
  });

  test('(f) STATE_SNAPSHOT at run start, MESSAGES_SNAPSHOT on a resumed thread, a step per model call', async () => {
    await script(
      { type: 'tool_calls', calls: [{ name: 'list_tasks', arguments: {} }] },
      { type: 'text', text: 'Listed.' },
      { type: 'text', text: 'Again.' },
    );
    const agent = newAgent();
    agent.addMessage(userMessage('list'));
    const first = await recordRun(agent);
    assertClean(first);
    assert.deepEqual(first.types.slice(0, 2), ['RUN_STARTED', 'STATE_SNAPSHOT']);
    assert.equal(agent.state.mode, 'home');
    const steps = first.events.filter((e) => e.type.startsWith('STEP_')).map((e) => `${e.type} ${e.stepName}`);
    assert.deepEqual(steps, ['STEP_STARTED step-1', 'STEP_FINISHED step-1', 'STEP_STARTED step-2', 'STEP_FINISHED step-2']);
    agent.addMessage(userMessage('again'));
    const second = await recordRun(agent);
    assertClean(second);
    assert.equal(second.types[2], 'MESSAGES_SNAPSHOT');
    const snap = second.events[2].messages;
    assert.deepEqual(snap.filter((m) => m.role === 'user').map((m) => m.content), ['list', 'again']);
    assert.equal(agent.messages.at(-1).content, 'Again.');
  });

  test('(g) streamed reasoning becomes REASONING events', async () => {
    // paced as a model slower than the relay streams: one REASONING_MESSAGE_CONTENT per delta
    await script({ type: 'text', text: 'Done.', reasoning: ['Think ', 'first.'], chunk_delay_s: 0.02 });
    const agent = newAgent();
    agent.addMessage(userMessage('think'));
    const rec = await recordRun(agent);
    assertClean(rec);
    assertTerminal(rec, EventType.RUN_FINISHED);
    const reasoning = rec.events.filter((e) => e.type.startsWith('REASONING'));
    assert.deepEqual(reasoning.map((e) => e.type), ['REASONING_START', 'REASONING_MESSAGE_START',
      'REASONING_MESSAGE_CONTENT', 'REASONING_MESSAGE_CONTENT', 'REASONING_MESSAGE_END', 'REASONING_END']);
    assert.equal(reasoning.filter((e) => e.delta).map((e) => e.delta).join(''), 'Think first.');
  });

  test('(h) an output block arrives as one CUSTOM block event', async () => {
    const block = { type: 'table', headers: ['Task', 'Due'], rows: [['Send invoice', '2026-12-03']] };
    const text = `Here:\n\`\`\`block\n${JSON.stringify(block)}\n\`\`\`\nDone.`;
    const chunks = [];
    for (let i = 0; i < text.length; i += 4) chunks.push(text.slice(i, i + 4));
    await script({ type: 'text', chunks });
    const agent = newAgent();
    agent.addMessage(userMessage('table please'));
    const rec = await recordRun(agent);
    assertClean(rec);
    assertTerminal(rec, EventType.RUN_FINISHED);
    const blocks = rec.events.filter((e) => e.type === 'CUSTOM' && e.name === 'block');
    assert.deepEqual(blocks.map((e) => e.value), [block]);
    assert.equal(agent.messages.at(-1).content, 'Here:\n\nDone.');
  });
});

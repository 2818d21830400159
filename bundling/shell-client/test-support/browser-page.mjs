// The renderer side of tests/e2e/test_browser.py: what an Electron renderer (or any web page)
// does when it talks to the sidecar itself — from its own origin, with CORS preflights, streaming
// over fetch. Bundled at test time with esbuild (`@ag-ui/client` from the committed lockfile)
// into an IIFE the test page loads; not committed as a build product.
//
// The page reads `api` (the sidecar's base URL) and `token` from its URL fragment, as a shell
// would hand them to its renderer (the fragment is never sent to the page's own server). It then
//   1. follows GET /v1/events over fetch (EventSource cannot send the bearer token),
//   2. runs one agent run with the official HttpAgent, rendering `block` CUSTOM events into the
//      DOM (a `table` block as an HTML table),
// and publishes what it saw as `window.__done` (a Promise of a plain object) for the test.

import { HttpAgent } from '@ag-ui/client';

const params = new URLSearchParams(location.hash.slice(1));
const api = params.get('api') ?? '';
const token = params.get('token') ?? '';
const threadId = params.get('thread') ?? 'browser';
const auth = { Authorization: `Bearer ${token}` };

/** What the page saw, returned to the test. */
const seen = {
  origin: location.origin,
  eventTypes: /** @type {string[]} */ ([]),
  text: '',
  customs: /** @type {{name: string, value: any}[]} */ ([]),
  changes: /** @type {any[]} */ ([]),
  errors: /** @type {string[]} */ ([]),
  eventsStatus: /** @type {number|null} */ (null),
};

/** @param {any} block */
function renderBlock(block) {
  const host = /** @type {HTMLElement} */ (document.getElementById('blocks'));
  if (block && block.type === 'table') {
    const table = document.createElement('table');
    const head = table.createTHead().insertRow();
    for (const h of block.headers ?? []) head.appendChild(document.createElement('th')).textContent = String(h);
    const body = table.createTBody();
    for (const row of block.rows ?? []) {
      const tr = body.insertRow();
      for (const cell of row) tr.insertCell().textContent = String(cell);
    }
    host.appendChild(table);
  } else {
    host.appendChild(document.createElement('pre')).textContent = JSON.stringify(block);
  }
}

/**
 * Follow /v1/events until a `change` of `entity` arrives (or `signal` aborts).
 * @param {AbortSignal} signal
 * @param {string} entity
 * @param {() => void} onOpen  called once the stream's headers are in
 */
async function followEvents(signal, entity, onOpen) {
  const resp = await fetch(`${api}/v1/events`, { headers: { ...auth, Accept: 'text/event-stream' }, signal });
  seen.eventsStatus = resp.status;
  onOpen();
  if (!resp.ok || !resp.body) throw new Error(`/v1/events answered ${resp.status}`);
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let cut;
    while ((cut = buf.indexOf('\n\n')) >= 0) {
      const frame = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      const lines = frame.split('\n');
      const name = lines.find((l) => l.startsWith('event:'))?.slice(6).trim() ?? 'message';
      const data = lines.filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
      if (name !== 'change' || !data) continue;
      const change = JSON.parse(data);
      seen.changes.push(change);
      if (change.entity === entity) return;
    }
  }
}

async function scenario() {
  const stop = new AbortController();
  /** @type {() => void} */
  let onOpen = () => {};
  const opened = new Promise((res) => { onOpen = () => res(undefined); });
  const follow = followEvents(stop.signal, 'tasks', () => onOpen()).catch((e) => { seen.errors.push(`events: ${e}`); });
  await Promise.race([opened, follow]);  // live before the run starts (or refused)

  const agent = new HttpAgent({ url: `${api}/v1/agent/runs`, headers: auth, threadId });
  agent.addMessage({ id: crypto.randomUUID(), role: 'user', content: 'Add "Buy milk" and show my tasks as a table' });
  try {
    await agent.runAgent({ runId: crypto.randomUUID(), forwardedProps: { mode: 'home' } }, {
      onEvent: ({ event }) => { seen.eventTypes.push(event.type); },
      onTextMessageContentEvent: ({ event }) => { seen.text += event.delta; },
      onCustomEvent: ({ event }) => {
        seen.customs.push({ name: event.name, value: event.value });
        if (event.name === 'block') renderBlock(event.value);
      },
      onRunErrorEvent: ({ event }) => { seen.errors.push(`RUN_ERROR ${event.code}: ${event.message}`); },
    });
  } catch (e) {
    seen.errors.push(`run: ${e}`);
  }
  // the change may trail the run's end by a commit notification: wait for it, bounded
  await Promise.race([follow, new Promise((r) => setTimeout(r, 3000))]);
  stop.abort();
  const host = /** @type {HTMLElement} */ (document.getElementById('blocks'));
  return { ...seen, blocksHtml: host.innerHTML };
}

/** @type {any} */ (window).__seen = seen;  // progress, for a failing test's message
/** @type {any} */ (window).__done = scenario();

// Test helpers: the real sidecar and the scripted fake LLM as processes, temp dirs, console
// capture for the AG-UI client, and a /proc scan for leftover processes.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomUUID } from 'node:crypto';

import { startSidecar } from '../index.js';

export const here = dirname(fileURLToPath(import.meta.url));
/** The repository root (`python -m sidecar` and `-m tests.fakes.llm_server` import from here). */
export const repoRoot = resolve(here, '..', '..', '..');

/** The Python interpreter: $SIDECAR_PYTHON, else the repo's venv, else python3. */
export function pythonPath() {
  if (process.env.SIDECAR_PYTHON) return process.env.SIDECAR_PYTHON;
  const venv = join(repoRoot, '.venv', 'bin', 'python');
  return existsSync(venv) ? venv : 'python3';
}

/** Environment for spawned Python processes: no SIDECAR_* leaking from the developer's shell. */
export function cleanEnv(extra = {}) {
  /** @type {Record<string, string|undefined>} */
  const env = {};
  for (const key of Object.keys(process.env)) {
    if (key.startsWith('SIDECAR_')) env[key] = undefined;
  }
  return { ...env, PYTHONUNBUFFERED: '1', ...extra };
}

/** A fresh temp directory, removed by `cleanup()`. */
export function tempDir(prefix = 'sidecar-node-') {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Start the real sidecar (`python -m sidecar serve`) on a fresh data dir under `root`.
 * @param {string} root
 * @param {Partial<import('../index.js').StartOptions>} [opts]
 */
export async function startRealSidecar(root, opts = {}) {
  const dataDir = opts.dataDir ?? join(root, `data-${randomUUID().slice(0, 8)}`);
  return startSidecar({
    command: pythonPath(),
    args: ['-m', 'sidecar'],
    cwd: repoRoot,
    handshakeTimeoutMs: 30_000,
    ...opts,
    env: { ...cleanEnv(), ...(opts.env ?? {}) },
    dataDir,
  });
}

/**
 * Start `python -m tests.fakes.llm_server --script FILE` and read its ready line.
 * @param {string} root  where the script file goes
 * @param {any} [script]
 */
export async function startFakeLlm(root, script = { queue: [] }) {
  const file = join(root, `fake-llm-${randomUUID().slice(0, 8)}.json`);
  writeFileSync(file, JSON.stringify(script));
  const env = /** @type {Record<string, string>} */ (Object.fromEntries(
    Object.entries({ ...process.env, ...cleanEnv() }).filter(([, v]) => v !== undefined),
  ));
  const child = spawn(pythonPath(), ['-m', 'tests.fakes.llm_server', '--script', file], {
    cwd: repoRoot,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => { stderr = (stderr + d).slice(-8000); });
  const exited = new Promise((res) => child.once('exit', (code, signal) => res({ code, signal })));
  const ready = await new Promise((res, rej) => {
    let buf = '';
    const timer = setTimeout(() => rej(new Error(`fake LLM: no ready line in 20 s\n${stderr}`)), 20_000);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        try { res(JSON.parse(buf.slice(0, nl))); } catch (e) { rej(e); }
      }
    });
    child.once('exit', (code) => { clearTimeout(timer); rej(new Error(`fake LLM exited (${code})\n${stderr}`)); });
  });
  const control = async (/** @type {string} */ method, /** @type {string} */ path, /** @type {any} */ body) => {
    const resp = await fetch(`http://127.0.0.1:${ready.port}${path}`, {
      method,
      headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!resp.ok) throw new Error(`fake LLM ${method} ${path} → ${resp.status}: ${await resp.text()}`);
    return resp.json();
  };
  return {
    port: ready.port,
    baseUrl: /** @type {string} */ (ready.base_url),
    pid: /** @type {number} */ (child.pid),
    /** Forget queue, rules and recorded requests, then queue `replies`. */
    async script(/** @type {any[]} */ ...replies) {
      await control('POST', '/_fake/reset');
      await control('POST', '/_fake/script', { queue: replies });
    },
    requests: () => control('GET', '/_fake/requests'),
    stderr: () => stderr,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
    },
  };
}

/** Point the sidecar's model settings at the fake LLM. */
export async function configureModel(sidecar, fake, extra = {}) {
  return sidecar.request('PUT', '/v1/settings/model', {
    model: 'openai/fake-model', apiBase: fake.baseUrl, stallTimeoutS: 5, requestTimeoutS: 10, maxRetries: 0, ...extra,
  });
}

/**
 * Capture console.warn / console.error (the AG-UI client reports problems there) while `fn`
 * runs; returns `[result, messages]`. Output is still printed so a failure is visible.
 * @template T
 * @param {() => Promise<T>} fn
 * @returns {Promise<[T, string[]]>}
 */
export async function captureConsole(fn) {
  const messages = [];
  const { warn, error } = console;
  const fmt = (/** @type {any[]} */ args) => args.map((a) => (a instanceof Error ? `${a.name}: ${a.message}` : typeof a === 'string' ? a : JSON.stringify(a))).join(' ');
  console.warn = (...args) => { messages.push(`warn: ${fmt(args)}`); warn.apply(console, args); };
  console.error = (...args) => { messages.push(`error: ${fmt(args)}`); error.apply(console, args); };
  try {
    return [await fn(), messages];
  } finally {
    console.warn = warn;
    console.error = error;
  }
}

/** `promise`, or a rejection after `ms` naming `what`. */
export function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${what}`)), ms); }),
  ]);
}

/** Wait until `predicate()` is truthy (polling), or throw after `ms`. */
export async function waitFor(predicate, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await predicate();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** True when `pid` no longer exists (process.kill(pid, 0) throws ESRCH). */
export function isGone(pid) {
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return err.code === 'ESRCH';
  }
}

/**
 * Linux: pids of live (non-zombie) processes whose command line contains `needle`.
 * Elsewhere: an empty list (the check is skipped).
 */
export function processesMentioning(needle) {
  if (process.platform !== 'linux') return [];
  const found = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (!cmdline.includes(needle)) continue;
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      if (state !== 'Z' && state !== 'X') found.push({ pid: Number(name), cmdline: cmdline.trim() });
    } catch {
      // the process went away while we looked
    }
  }
  return found;
}

/** A user message in AG-UI form. */
export function userMessage(text) {
  return { id: randomUUID(), role: 'user', content: text };
}

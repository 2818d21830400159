// Reference shell client for the sidecar (protocol "sidecar/1").
//
// For the Electron main process (or any Node >= 18.17 program): spawn the sidecar, verify its
// handshake, keep the parent tie (its stdin), talk to the local API with the token attached,
// run agents through the official AG-UI client, follow the notification stream, and stop the
// process (and every process it started) for sure.
//
// Plain JavaScript with JSDoc types, no build step. See README.md.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { HttpAgent } from '@ag-ui/client';

export { EventType } from '@ag-ui/core';

/** The process protocol this client speaks (the handshake's `protocol`). */
export const PROTOCOL = 'sidecar/1';

/** Path of the AG-UI runs endpoint. */
export const RUNS_PATH = '/v1/agent/runs';

const STDERR_TAIL_LINES = 200;
const MAX_HANDSHAKE_BYTES = 64 * 1024;

/**
 * Why `startSidecar` failed. `code` is the sidecar's own code when it printed an
 * `{"event":"error"}` line (e.g. `already_running`, `data_dir_unusable`), else one of
 * `spawn_failed`, `exited`, `handshake_timeout`, `bad_handshake`, `protocol_mismatch`.
 */
export class SidecarStartError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {{exitCode?: number|null, signal?: string|null, stderr?: string, line?: string, cause?: unknown}} [extra]
   */
  constructor(code, message, extra = {}) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'SidecarStartError';
    /** @type {string} */
    this.code = code;
    /** @type {number|null} exit code of the process, when it exited */
    this.exitCode = extra.exitCode ?? null;
    /** @type {string|null} */
    this.signal = extra.signal ?? null;
    /** @type {string} the tail of the sidecar's stderr (JSON log lines) */
    this.stderr = extra.stderr ?? '';
    /** @type {string} the first stdout line, as received */
    this.line = extra.line ?? '';
  }
}

/** A non-2xx answer of the local API: `{error: {code, message, detail}}`. */
export class SidecarHttpError extends Error {
  /**
   * @param {number} status
   * @param {any} body
   * @param {string} method
   * @param {string} path
   */
  constructor(status, body, method, path) {
    const err = body && typeof body === 'object' ? body.error : undefined;
    super(`${method} ${path} → ${status}${err?.code ? ` ${err.code}` : ''}: ${err?.message ?? (typeof body === 'string' ? body : JSON.stringify(body))}`);
    this.name = 'SidecarHttpError';
    /** @type {number} */
    this.status = status;
    /** @type {string|undefined} */
    this.code = err?.code;
    /** @type {any} */
    this.detail = err?.detail;
    /** @type {any} */
    this.body = body;
  }
}

/**
 * @typedef {object} StartOptions
 * @property {string} command The program: the bundled binary (`.../sidecar`) or a Python interpreter.
 * @property {string[]} [args] Arguments before the `serve` subcommand, e.g. `['-m', 'sidecar']` for Python.
 * @property {string} dataDir The data directory (`--data-dir`).
 * @property {Record<string, string|undefined>} [env] Extra environment (merged over `process.env`;
 *   `undefined` removes a variable). Secrets go here (`SIDECAR_SECRET_<NAME>`), never in argv.
 * @property {string|boolean} [token] The API token to hand over as `SIDECAR_TOKEN`; `true` makes a
 *   random one. Without it the sidecar makes one and sends it in the handshake (an inherited or
 *   `env.SIDECAR_TOKEN` is used the same way).
 * @property {string[]} [allowOrigins] Origins allowed to call the API (`--allow-origin`, e.g. `app://-`).
 * @property {string[]} [serveArgs] Further `serve` arguments (`--watch PATH`, `--log-level debug`, …).
 * @property {number|false} [parentPid] `--parent-pid` (default: this process); `false` leaves it out.
 * @property {string} [cwd] Working directory of the process.
 * @property {number} [handshakeTimeoutMs] How long to wait for the handshake line (default 20000).
 * @property {(line: string) => void} [onStderr] Called with every stderr line (JSON log records).
 * @property {boolean} [processGroup] POSIX: start the sidecar in its own process group so a forced
 *   stop also ends anything it started (default true; ignored on Windows).
 */

/**
 * @typedef {object} Handshake
 * @property {'ready'} event
 * @property {string} protocol
 * @property {number} port
 * @property {string} [token]
 * @property {number} pid
 * @property {string} instance
 * @property {string} version
 */

/**
 * @typedef {object} SseMessage
 * @property {string} event  the `event:` field (`message` when absent)
 * @property {string} data   the `data:` lines joined with `\n`
 * @property {string|undefined} id
 * @property {any} json      `data` parsed as JSON (undefined when it is not JSON)
 */

/**
 * @typedef {object} ChangeEvent  data of a `change` notification (one change-log entry)
 * @property {number} seq
 * @property {string} eventId
 * @property {string} entity
 * @property {string} id
 * @property {'insert'|'update'|'delete'} op
 * @property {Record<string, any>} fields
 * @property {string} hlc
 * @property {'local'|'remote'} origin
 * @property {string} deviceId
 */

/**
 * @typedef {object} SubscribeOptions
 * @property {number} [after] Deliver every change with a `seq` greater than this (backlog first).
 *   Without it only changes committed after the stream opened are delivered.
 * @property {(change: ChangeEvent, message: SseMessage) => void} [onChange] Each `change` event.
 * @property {(message: SseMessage) => void} [onEvent] Every event (changes and transient ones:
 *   `run.status`, ingest progress, …).
 * @property {(error: Error) => void} [onError] A connection error (the stream reconnects unless
 *   the error is fatal: 401/403/4xx answers stop it).
 * @property {() => void} [onOpen] Each time the stream (re)connects.
 * @property {boolean} [reconnect] Reconnect after a drop, resuming with `Last-Event-ID` (default true).
 * @property {number} [retryMs] Delay before reconnecting (default 1000; the server's `retry:` wins).
 */

/**
 * @typedef {(() => void) & {ready: Promise<void>, closed: Promise<void>, lastEventId: () => number|undefined}} Unsubscribe
 *  Call it to stop. `ready` resolves when the first connection is open (rejects if it fails
 *  fatally); `closed` resolves once the stream has ended for good.
 */

/**
 * @typedef {object} Sidecar
 * @property {Handshake} handshake The ready line as received.
 * @property {number} port
 * @property {string} token
 * @property {string} baseUrl `http://127.0.0.1:PORT`
 * @property {number} pid The spawned process's pid.
 * @property {string} instance
 * @property {string} version
 * @property {import('node:child_process').ChildProcess} process
 * @property {Promise<{code: number|null, signal: NodeJS.Signals|null}>} exited Settles when the process exits.
 * @property {(path: string, init?: RequestInit) => Promise<Response>} fetch `fetch` with the base URL and token.
 * @property {(method: string, path: string, body?: any) => Promise<any>} request JSON call; throws SidecarHttpError on non-2xx.
 * @property {(config?: {threadId?: string, cancelOnAbort?: boolean} & Record<string, any>) => SidecarAgent} agent An AG-UI
 *   `HttpAgent` (subclass {@link SidecarAgent}) on the runs endpoint, token in its headers.
 * @property {(runId: string) => Promise<boolean>} cancelRun `POST /v1/agent/runs/{runId}/cancel`.
 * @property {(options?: SubscribeOptions) => Unsubscribe} subscribeEvents Follow `GET /v1/events`.
 * @property {() => string} stderrTail The last stderr lines (diagnostics).
 * @property {(options?: {timeoutMs?: number}) => Promise<number|null>} stop Close stdin, wait,
 *   SIGTERM, wait, SIGKILL; resolves with the exit code (null when a signal ended it).
 */

/**
 * Spawn the sidecar and wait for its handshake.
 *
 * @param {StartOptions} options
 * @returns {Promise<Sidecar>}
 */
export async function startSidecar(options) {
  const {
    command,
    args = [],
    dataDir,
    env: extraEnv = {},
    allowOrigins = [],
    serveArgs = [],
    parentPid = process.pid,
    cwd,
    handshakeTimeoutMs = 20_000,
    onStderr,
  } = options ?? /** @type {any} */ ({});
  if (!command) throw new TypeError('startSidecar: `command` is required');
  if (!dataDir) throw new TypeError('startSidecar: `dataDir` is required');
  const useGroup = (options.processGroup ?? true) && process.platform !== 'win32';

  /** @type {Record<string, string>} */
  const env = {};
  for (const [k, v] of Object.entries({ ...process.env, ...extraEnv })) {
    if (v !== undefined) env[k] = String(v);
  }
  if (options.token === true) env.SIDECAR_TOKEN = randomBytes(32).toString('base64url');
  else if (typeof options.token === 'string') env.SIDECAR_TOKEN = options.token;
  const suppliedToken = env.SIDECAR_TOKEN || undefined;

  const argv = [...args, 'serve', '--data-dir', dataDir];
  if (parentPid !== false && parentPid != null) argv.push('--parent-pid', String(parentPid));
  for (const origin of allowOrigins) argv.push('--allow-origin', origin);
  argv.push(...serveArgs);

  const child = spawn(command, argv, {
    cwd,
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: useGroup, // own process group (POSIX): a forced stop reaches grandchildren too
    windowsHide: true,
  });

  // stderr: always drained (a full pipe would block the sidecar), tail kept for diagnostics.
  /** @type {string[]} */
  const stderrLines = [];
  let stderrPartial = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk) => {
    const parts = (stderrPartial + chunk).split('\n');
    stderrPartial = parts.pop() ?? '';
    for (const line of parts) {
      stderrLines.push(line);
      if (stderrLines.length > STDERR_TAIL_LINES) stderrLines.shift();
      if (onStderr) {
        try { onStderr(line); } catch { /* a logger must not break the client */ }
      }
    }
  });
  const stderrTail = () => [...stderrLines, ...(stderrPartial ? [stderrPartial] : [])].join('\n');

  // stdin: kept open — it is the parent tie. Writing never happens; errors (EPIPE) are ignored.
  child.stdin?.on('error', () => {});

  /** @type {Promise<{code: number|null, signal: NodeJS.Signals|null}>} */
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', (err) => {
      // spawn failure: no 'exit' follows
      if (child.pid === undefined) resolve({ code: null, signal: null });
      void err;
    });
  });
  let hasExited = false;
  void exited.then(() => { hasExited = true; });

  const killGroup = (/** @type {NodeJS.Signals} */ sig) => {
    if (child.pid === undefined) return;
    try {
      if (useGroup) process.kill(-child.pid, sig);
      else child.kill(sig);
    } catch { /* already gone */ }
  };

  /** @type {Handshake} */
  let handshake;
  try {
    handshake = await readHandshake(child, exited, handshakeTimeoutMs, stderrTail);
  } catch (err) {
    // Never leave a half-started process behind.
    if (!hasExited) {
      killGroup('SIGKILL');
      await within(exited, 2000);
    }
    child.stdin?.destroy();
    child.stdout?.destroy();
    throw err;
  }

  const problems = checkHandshake(handshake, suppliedToken);
  if (problems) {
    killGroup('SIGKILL');
    await within(exited, 2000);
    child.stdin?.destroy();
    throw new SidecarStartError(problems.code, problems.message, { line: JSON.stringify(handshake), stderr: stderrTail() });
  }
  // Whatever else appears on stdout is drained (the contract says there is nothing).
  child.stdout?.resume();

  const token = suppliedToken ?? /** @type {string} */ (handshake.token);
  const baseUrl = `http://127.0.0.1:${handshake.port}`;
  const authHeader = `Bearer ${token}`;
  /** @type {Set<() => void>} */
  const subscriptions = new Set();

  /** @type {(path: string, init?: RequestInit) => Promise<Response>} */
  const sidecarFetch = (path, init = {}) => {
    const headers = new Headers(init.headers);
    headers.set('Authorization', authHeader);
    return fetch(baseUrl + path, { ...init, headers });
  };

  /** @type {(method: string, path: string, body?: any) => Promise<any>} */
  const request = async (method, path, body) => {
    /** @type {RequestInit} */
    const init = { method, headers: { Accept: 'application/json' } };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers = { ...init.headers, 'Content-Type': 'application/json' };
    }
    const resp = await sidecarFetch(path, init);
    const text = await resp.text();
    let data = text;
    try { data = text ? JSON.parse(text) : undefined; } catch { /* keep the text */ }
    if (!resp.ok) throw new SidecarHttpError(resp.status, data, method, path);
    return data;
  };

  // A subscription outliving its process would retry a dead port forever.
  void exited.then(() => { for (const unsubscribe of [...subscriptions]) unsubscribe(); });

  /** @type {Promise<number|null> | undefined} */
  let stopping;

  /** @type {Sidecar} */
  const sidecar = {
    handshake,
    port: handshake.port,
    token,
    baseUrl,
    pid: /** @type {number} */ (child.pid),
    instance: handshake.instance,
    version: handshake.version,
    process: child,
    exited,
    fetch: sidecarFetch,
    request,
    agent(config = {}) {
      const { headers, cancelOnAbort = true, ...rest } = config;
      return new SidecarAgent({
        ...rest,
        url: baseUrl + RUNS_PATH,
        headers: { ...(headers ?? {}), Authorization: authHeader },
      }, (runId) => sidecar.cancelRun(runId), cancelOnAbort);
    },
    async cancelRun(runId) {
      const res = await request('POST', `${RUNS_PATH}/${encodeURIComponent(runId)}/cancel`);
      return Boolean(res?.cancelled);
    },
    subscribeEvents(opts = {}) {
      const unsubscribe = subscribe(sidecarFetch, opts, () => subscriptions.delete(unsubscribe));
      subscriptions.add(unsubscribe);
      return unsubscribe;
    },
    stderrTail,
    stop({ timeoutMs = 5000 } = {}) {
      stopping ??= (async () => {
        for (const unsubscribe of [...subscriptions]) unsubscribe();
        const bounded = async () => (await within(exited, timeoutMs)) !== undefined;
        if (!hasExited) {
          child.stdin?.end(); // EOF: the sidecar shuts down gracefully
          if (!(await bounded())) {
            killGroup('SIGTERM');
            if (!(await bounded())) {
              killGroup('SIGKILL');
              await exited;
            }
          }
        }
        const { code } = await exited;
        // Anything the sidecar started and left behind in its process group goes too.
        if (useGroup && child.pid !== undefined && groupAlive(child.pid)) {
          killGroup('SIGTERM');
          const deadline = Date.now() + Math.min(timeoutMs, 2000);
          while (groupAlive(child.pid) && Date.now() < deadline) await delay(50);
          if (groupAlive(child.pid)) killGroup('SIGKILL');
        }
        child.stdin?.destroy();
        child.stdout?.destroy();
        child.stderr?.destroy();
        return code;
      })();
      return stopping;
    },
  };
  return sidecar;
}

/**
 * The official AG-UI `HttpAgent`, aware of the sidecar's run lifecycle.
 *
 * A sidecar run goes on when its HTTP stream is dropped (a reloaded window must not kill it), so
 * aborting the request alone would leave the run busy on the thread (a new run answers 409).
 * `abortRun()` therefore also asks the sidecar to cancel the run (unless `cancelOnAbort: false`),
 * and `cancelRun()` is the graceful stop: the stream goes on to its final
 * `RUN_FINISHED` with `outcome: {type: "cancelled"}`.
 */
export class SidecarAgent extends HttpAgent {
  /**
   * @param {import('@ag-ui/client').HttpAgentConfig} config
   * @param {(runId: string) => Promise<boolean>} cancel
   * @param {boolean} [cancelOnAbort]
   */
  constructor(config, cancel, cancelOnAbort = true) {
    super(config);
    /** @private */
    this._cancel = cancel;
    /** @type {boolean} */
    this.cancelOnAbort = cancelOnAbort;
    /** @type {string|undefined} the runId of the latest run this agent started */
    this.currentRunId = undefined;
  }

  /** @param {import('@ag-ui/client').RunAgentInput} input */
  run(input) {
    this.currentRunId = input.runId;
    return super.run(input);
  }

  /**
   * Cancel the running run on the sidecar; its stream ends with `RUN_FINISHED` (cancelled).
   * @returns {Promise<boolean>} false when no run of this agent is running
   */
  async cancelRun() {
    if (!this.isRunning || !this.currentRunId) return false;
    return this._cancel(this.currentRunId);
  }

  abortRun() {
    if (this.cancelOnAbort && this.isRunning && this.currentRunId) {
      this._cancel(this.currentRunId).catch(() => {});
    }
    super.abortRun();
  }

  /** @returns {SidecarAgent} */
  clone() {
    const copy = /** @type {SidecarAgent} */ (super.clone());
    copy._cancel = this._cancel;
    copy.cancelOnAbort = this.cancelOnAbort;
    copy.currentRunId = undefined;
    return copy;
  }
}

/** @param {number} pgid */
function groupAlive(pgid) {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    return /** @type {NodeJS.ErrnoException} */ (err).code === 'EPERM';
  }
}

/** @param {number} ms */
function delay(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * `promise`'s value, or `undefined` after `ms` (the timer is cleared either way).
 * @template T
 * @param {Promise<T>} promise
 * @param {number} ms
 * @returns {Promise<T|undefined>}
 */
function within(promise, ms) {
  /** @type {NodeJS.Timeout|undefined} */
  let timer;
  return Promise.race([
    promise,
    new Promise((resolve) => { timer = setTimeout(() => resolve(undefined), ms); }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * Read the first stdout line: the handshake, or the start-up error.
 *
 * @param {import('node:child_process').ChildProcess} child
 * @param {Promise<{code: number|null, signal: NodeJS.Signals|null}>} exited
 * @param {number} timeoutMs
 * @param {() => string} stderrTail
 * @returns {Promise<Handshake>}
 */
function readHandshake(child, exited, timeoutMs, stderrTail) {
  return new Promise((resolve, reject) => {
    let buf = '';
    let settled = false;
    /** @type {NodeJS.Timeout | undefined} */
    let timer;
    const finish = (/** @type {() => void} */ fn) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.stdout?.pause();
      fn();
    };
    const afterExit = async (/** @type {SidecarStartError} */ err) => {
      // Give the process a moment to exit so the error carries its exit code.
      const res = await within(exited, 1500);
      if (res) {
        err.exitCode = res.code;
        err.signal = res.signal;
      }
      err.stderr = stderrTail();
      return err;
    };
    const onLine = (/** @type {string} */ line) => {
      /** @type {any} */
      let msg;
      try {
        msg = JSON.parse(line);
      } catch {
        finish(() => reject(new SidecarStartError('bad_handshake', `the first stdout line is not JSON: ${JSON.stringify(line.slice(0, 200))}`, { line, stderr: stderrTail() })));
        return;
      }
      if (msg && typeof msg === 'object' && msg.event === 'error') {
        finish(() => {
          const err = new SidecarStartError(String(msg.code ?? 'start_failed'), String(msg.message ?? 'the sidecar failed to start'), { line });
          void afterExit(err).then(reject);
        });
        return;
      }
      if (!msg || typeof msg !== 'object' || msg.event !== 'ready') {
        finish(() => reject(new SidecarStartError('bad_handshake', `expected a ready handshake, got ${line.slice(0, 200)}`, { line, stderr: stderrTail() })));
        return;
      }
      finish(() => resolve(msg));
    };
    const onData = (/** @type {Buffer} */ chunk) => {
      buf += chunk.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl >= 0) onLine(buf.slice(0, nl).replace(/\r$/, ''));
      else if (buf.length > MAX_HANDSHAKE_BYTES) {
        finish(() => reject(new SidecarStartError('bad_handshake', 'the handshake line is too long', { line: buf.slice(0, 200), stderr: stderrTail() })));
      }
    };
    child.stdout?.on('data', onData);
    child.once('error', (err) => {
      finish(() => reject(new SidecarStartError('spawn_failed', `could not start ${child.spawnfile}: ${err.message}`, { cause: err, stderr: stderrTail() })));
    });
    const stdoutClosed = new Promise((res) => {
      child.stdout?.once('close', res);
      child.stdout?.once('end', res);
    });
    void exited.then(async ({ code, signal }) => {
      // 'exit' may come before the last stdout bytes: let the pipe drain (bounded) first.
      await within(stdoutClosed, 500);
      // Exit before a complete line: use what was written, if anything.
      if (!settled && buf.trim()) onLine(buf.trim());
      finish(() => reject(new SidecarStartError('exited', `the sidecar exited (${signal ?? `code ${code}`}) before its handshake`, { exitCode: code, signal, stderr: stderrTail(), line: buf })));
    });
    timer = setTimeout(() => {
      finish(() => reject(new SidecarStartError('handshake_timeout', `no handshake within ${timeoutMs} ms`, { stderr: stderrTail(), line: buf })));
    }, timeoutMs);
  });
}

/**
 * @param {any} hs
 * @param {string|undefined} suppliedToken
 * @returns {{code: string, message: string} | null}
 */
function checkHandshake(hs, suppliedToken) {
  if (hs.protocol !== PROTOCOL) {
    return { code: 'protocol_mismatch', message: `the sidecar speaks ${JSON.stringify(hs.protocol)}, this client ${PROTOCOL}` };
  }
  /** @type {string[]} */
  const bad = [];
  if (!Number.isInteger(hs.port) || hs.port < 1 || hs.port > 65535) bad.push('port');
  if (!Number.isInteger(hs.pid) || hs.pid < 1) bad.push('pid');
  if (typeof hs.instance !== 'string' || !hs.instance) bad.push('instance');
  if (typeof hs.version !== 'string' || !hs.version) bad.push('version');
  if (suppliedToken === undefined) {
    if (typeof hs.token !== 'string' || !hs.token) bad.push('token');
  } else if (hs.token !== undefined && hs.token !== suppliedToken) {
    bad.push('token (differs from SIDECAR_TOKEN)');
  }
  if (bad.length) return { code: 'bad_handshake', message: `handshake fields missing or invalid: ${bad.join(', ')}` };
  return null;
}

/**
 * Follow `GET /v1/events` with fetch streaming; reconnects and resumes with `Last-Event-ID`.
 *
 * @param {(path: string, init?: RequestInit) => Promise<Response>} sidecarFetch
 * @param {SubscribeOptions} opts
 * @param {() => void} onClosed
 * @returns {Unsubscribe}
 */
function subscribe(sidecarFetch, opts, onClosed) {
  const { onChange, onEvent, onError, onOpen, reconnect = true } = opts;
  let retryMs = opts.retryMs ?? 1000;
  /** @type {number|undefined} */
  let lastId = opts.after;
  let stopped = false;
  let first = true;
  /** @type {AbortController} */
  let controller = new AbortController();
  /** @type {(v?: any) => void} */
  let readyResolve = () => {};
  /** @type {(e: any) => void} */
  let readyReject = () => {};
  /** @type {Promise<void>} */
  const ready = new Promise((res, rej) => { readyResolve = res; readyReject = rej; });
  ready.catch(() => {}); // an unobserved failure is reported through onError too

  const report = (/** @type {Error} */ err) => {
    if (onError) {
      try { onError(err); } catch { /* ignore */ }
    }
  };

  const dispatch = (/** @type {SseMessage} */ msg) => {
    if (msg.id !== undefined && /^\d+$/.test(msg.id)) lastId = Number(msg.id);
    try {
      onEvent?.(msg);
      if (msg.event === 'change' && msg.json !== undefined) onChange?.(msg.json, msg);
    } catch (err) {
      report(/** @type {Error} */ (err));
    }
  };

  const connectOnce = async () => {
    /** @type {Record<string, string>} */
    const headers = { Accept: 'text/event-stream' };
    let path = '/v1/events';
    if (first && opts.after !== undefined) path += `?after=${encodeURIComponent(String(opts.after))}`;
    else if (lastId !== undefined) headers['Last-Event-ID'] = String(lastId);
    controller = new AbortController();
    const resp = await sidecarFetch(path, { headers, signal: controller.signal });
    if (!resp.ok) {
      const body = await resp.text().catch(() => '');
      let data = body;
      try { data = JSON.parse(body); } catch { /* text */ }
      const err = new SidecarHttpError(resp.status, data, 'GET', path);
      /** @type {any} */ (err).fatal = resp.status >= 400 && resp.status < 500;
      throw err;
    }
    if (!resp.body) throw new Error('the events response has no body');
    first = false;
    readyResolve();
    onOpen?.();
    const parser = new SseParser((msg) => dispatch(msg), (ms) => { retryMs = ms; });
    const decoder = new TextDecoder();
    for await (const chunk of /** @type {AsyncIterable<Uint8Array>} */ (/** @type {unknown} */ (resp.body))) {
      parser.feed(decoder.decode(chunk, { stream: true }));
    }
    parser.feed(decoder.decode());
  };

  const closed = (async () => {
    while (!stopped) {
      try {
        await connectOnce();
        if (stopped) break;
        report(new Error('the events stream ended'));
      } catch (err) {
        if (stopped) break;
        const e = /** @type {any} */ (err);
        report(e);
        if (e?.fatal) {
          readyReject(e);
          break;
        }
      }
      if (!reconnect) break;
      await delay(retryMs);
    }
    readyReject(new Error('unsubscribed before the events stream opened'));
    onClosed();
  })();

  /** @type {any} */
  const unsubscribe = () => {
    if (stopped) return;
    stopped = true;
    controller.abort();
  };
  unsubscribe.ready = ready;
  unsubscribe.closed = closed;
  unsubscribe.lastEventId = () => lastId;
  return /** @type {Unsubscribe} */ (unsubscribe);
}

/** A Server-Sent Events parser (WHATWG rules: LF, CR or CRLF line ends; comments ignored). */
export class SseParser {
  /**
   * @param {(msg: SseMessage) => void} onMessage
   * @param {(ms: number) => void} [onRetry]
   */
  constructor(onMessage, onRetry) {
    this.onMessage = onMessage;
    this.onRetry = onRetry;
    this.buf = '';
    /** @type {string[]} */
    this.data = [];
    this.event = '';
    /** @type {string|undefined} */
    this.id = undefined;
    this.pendingCR = false;
  }

  /** @param {string} text */
  feed(text) {
    if (!text) return;
    if (this.pendingCR && text.startsWith('\n')) text = text.slice(1);
    this.pendingCR = false;
    this.buf += text;
    let m;
    const re = /\r\n|\r|\n/g;
    let start = 0;
    while ((m = re.exec(this.buf)) !== null) {
      if (m[0] === '\r' && m.index === this.buf.length - 1) {
        this.pendingCR = true; // a CRLF may be split across chunks
      }
      this.line(this.buf.slice(start, m.index));
      start = m.index + m[0].length;
    }
    this.buf = this.buf.slice(start);
  }

  /** @param {string} line */
  line(line) {
    if (line === '') {
      if (this.data.length) {
        const data = this.data.join('\n');
        let json;
        try { json = JSON.parse(data); } catch { json = undefined; }
        this.onMessage({ event: this.event || 'message', data, id: this.id, json });
      }
      this.data = [];
      this.event = '';
      return;
    }
    if (line.startsWith(':')) return;
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? '' : line.slice(i + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
    else if (field === 'id') { if (!value.includes('\0')) this.id = value; }
    else if (field === 'retry') { if (/^\d+$/.test(value)) this.onRetry?.(Number(value)); }
  }
}

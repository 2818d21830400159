// A stand-in for the sidecar binary, for the client's failure paths. Behaviour by env
// FAKE_SIDECAR_MODE:
//   ready (default)   serve a tiny /v1/events + /_requests server, print the handshake, exit on stdin EOF
//   error             print {"event":"error","code":"already_running",…}, exit 3
//   exit              write to stderr, exit 7 without a stdout line
//   garbage           print a non-JSON line, then hang
//   protocol          print a handshake with protocol sidecar/2, then hang
//   no-token          print a handshake without token, then hang
//   silent            print nothing, hang
//   stubborn          handshake; ignore stdin EOF and SIGTERM; start a grandchild that does the same
//   term-only         handshake; ignore stdin EOF; exit 5 on SIGTERM
//   leave-child       handshake; start a grandchild that ignores SIGTERM; exit 0 on stdin EOF
// The grandchild's pid is written to FAKE_SIDECAR_CHILD_PID_FILE when set.

import { createServer } from 'node:http';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';

const mode = process.env.FAKE_SIDECAR_MODE ?? 'ready';
const token = process.env.SIDECAR_TOKEN ?? 'fake-token-0123456789abcdef0123456789';
const hang = () => setInterval(() => {}, 1 << 30);

function handshake(extra = {}) {
  const line = { event: 'ready', protocol: 'sidecar/1', port: globalThis.port ?? 1, pid: process.pid, instance: '00000000-0000-4000-8000-000000000000', version: '0.0.0-fake', ...(process.env.SIDECAR_TOKEN ? {} : { token }), ...extra };
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

function grandchild() {
  const child = spawn(process.execPath, ['-e', "process.on('SIGTERM', () => {}); setInterval(() => {}, 1 << 30);", 'fake-sidecar-grandchild'], { stdio: 'ignore' });
  if (process.env.FAKE_SIDECAR_CHILD_PID_FILE) writeFileSync(process.env.FAKE_SIDECAR_CHILD_PID_FILE, String(child.pid));
}

const changes = [1, 2, 3, 4].map((seq) => ({ seq, eventId: `e${seq}`, entity: 'tasks', id: `task-${seq}`, op: 'insert', fields: { title: `t${seq}` }, hlc: `h${seq}`, origin: 'local', deviceId: 'd' }));
const requests = [];
let connections = 0;

async function serve() {
  const server = createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/_requests') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(requests));
      return;
    }
    requests.push({ path: req.url, lastEventId: req.headers['last-event-id'] ?? null, authorization: req.headers.authorization ?? null });
    if (req.headers.authorization !== `Bearer ${process.env.FAKE_SIDECAR_ACCEPT_TOKEN ?? token}`) {
      res.writeHead(401, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'unauthorized', message: 'missing or wrong token' } }));
      return;
    }
    if (url.pathname !== '/v1/events') {
      res.writeHead(404, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'not_found', message: 'no such route' } }));
      return;
    }
    connections += 1;
    const after = url.searchParams.has('after') ? Number(url.searchParams.get('after')) : req.headers['last-event-id'] ? Number(req.headers['last-event-id']) : 0;
    res.writeHead(200, { 'Content-Type': 'text/event-stream' });
    // CRLF framing and a comment on purpose: the client's parser must take any line ending.
    res.write('retry: 50\r\n: hello\r\n\r\n');
    const pending = changes.filter((c) => c.seq > after);
    const send = (c) => res.write(`id: ${c.seq}\r\nevent: change\r\ndata: ${JSON.stringify(c)}\r\n\r\n`);
    if (connections === 1) {
      // First connection: two changes (the second split across writes), then a dropped socket.
      send(pending[0]);
      const text = `id: ${pending[1].seq}\nevent: change\ndata: ${JSON.stringify(pending[1])}\n\n`;
      res.write(text.slice(0, 7));
      setTimeout(() => { res.write(text.slice(7)); res.write('event: run.status\ndata: {"status":"running"}\n\n'); setTimeout(() => req.socket.destroy(), 50); }, 30);
      return;
    }
    for (const c of pending) send(c);
    const ping = setInterval(() => res.write(': ping\n\n'), 200);
    req.on('close', () => clearInterval(ping));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  globalThis.port = server.address().port;
  return server;
}

const exitOnEof = () => {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
};

switch (mode) {
  case 'error':
    process.stdout.write(`${JSON.stringify({ event: 'error', code: 'already_running', message: 'another sidecar holds this data dir' })}\n`);
    process.exitCode = 3;
    break;
  case 'exit':
    process.stderr.write('{"level": "CRITICAL", "message": "cannot start"}\n');
    process.exit(7);
    break;
  case 'garbage':
    process.stdout.write('hello, I am not JSON\n');
    hang();
    break;
  case 'protocol':
    handshake({ protocol: 'sidecar/2' });
    hang();
    break;
  case 'no-token':
    process.stdout.write(`${JSON.stringify({ event: 'ready', protocol: 'sidecar/1', port: 1234, pid: process.pid, instance: 'x', version: '0' })}\n`);
    hang();
    break;
  case 'silent':
    hang();
    break;
  case 'stubborn':
    process.on('SIGTERM', () => {});
    process.stdin.resume();
    grandchild();
    handshake();
    hang();
    break;
  case 'term-only':
    process.on('SIGTERM', () => process.exit(5));
    process.stdin.resume();
    handshake();
    hang();
    break;
  case 'leave-child':
    grandchild();
    handshake();
    exitOnEof();
    break;
  default:
    await serve();
    handshake();
    exitOnEof();
}

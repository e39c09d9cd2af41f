// TypeScript baseline for the messaging bench (crates/p2p-core/benches/messaging.rs):
// two js-libp2p reference peers (interop/js-peer, the seed's wire behaviour) on
// TCP loopback; the sender floods fresh 256-byte-payload seed messages on
// /lotus/message/1.0.0 (one stream per message, as the seed sends) at
// concurrency 1 and 64; the receiver counts the valid ones (`msgstats`).
// Prints one JSON line per concurrency.
//
// The receiver runs with --message-close (closes its side of each inbound
// stream once read). Without it, the seed's receiver never closes and accepts
// only 32 messages per connection (see the js-peer README), so every figure
// would be "32 delivered".
//
// The peer (LOTUS_JS_PEER_DIR, else interop/js-peer in or next to the
// workspace; read-only is fine) is copied to target/js-peer-bench and installed
// there with `npm ci` once (reused while package-lock.json is unchanged).
// Every wait is bounded; only the processes started here are stopped.
// Run by `cargo bench -p p2p-core --bench messaging` (scenario `js`), or alone:
// `node xtask/bench/js-messaging.mjs`.
import { spawn, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
// The reference peer: LOTUS_JS_PEER_DIR, else interop/js-peer in the workspace,
// else shared/interop/js-peer next to it (as `cargo xtask bench` looks).
const SRC = [process.env.LOTUS_JS_PEER_DIR, path.join(ROOT, 'interop/js-peer'), path.join(ROOT, '../shared/interop/js-peer')]
  .filter(Boolean)
  .find((d) => fs.existsSync(path.join(d, 'peer.mjs')) && fs.existsSync(path.join(d, 'package-lock.json')))
  ?? path.join(ROOT, 'interop/js-peer');
const WORK = process.env.LOTUS_JS_PEER_WORK ?? path.join(ROOT, 'target', 'js-peer-bench');
const MESSAGE_PROTOCOL = '/lotus/message/1.0.0';
const COUNT = Number(process.env.LOTUS_JS_FLOOD_COUNT ?? 1000);
const CONCURRENCY = (process.env.LOTUS_JS_FLOOD_CONCURRENCY ?? '1,64').split(',').map(Number);
// LOTUS_JS_MESSAGE_CLOSE=0: the seed's receiver exactly (never closes; 32 messages per connection).
const MESSAGE_CLOSE = process.env.LOTUS_JS_MESSAGE_CLOSE !== '0';
const DEADLINE_MS = 100_000; // the whole script
const PAYLOAD = 'x'.repeat(254); // JSON.stringify(PAYLOAD).length === 256

const emit = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const log = (...a) => process.stderr.write(`[js-messaging] ${a.join(' ')}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const children = new Set();

function cleanupAndExit(code) {
  for (const c of children) {
    try { c.kill('SIGKILL'); } catch {}
  }
  process.exit(code);
}

const overall = setTimeout(() => {
  log(`over the ${DEADLINE_MS} ms bound, stopping`);
  emit({ scenario: 'js_flood', skipped: 'timed out' });
  cleanupAndExit(1);
}, DEADLINE_MS);

/** Copies the peer's files and runs `npm ci` unless the install is current. */
function install() {
  if (!fs.existsSync(path.join(SRC, 'peer.mjs'))) throw new Error(`no js peer in ${SRC}`);
  fs.mkdirSync(WORK, { recursive: true });
  for (const name of fs.readdirSync(SRC)) {
    const from = path.join(SRC, name);
    if (!fs.statSync(from).isFile()) continue;
    const data = fs.readFileSync(from);
    const to = path.join(WORK, name);
    if (!fs.existsSync(to) || !fs.readFileSync(to).equals(data)) {
      fs.rmSync(to, { force: true });
      fs.writeFileSync(to, data, { mode: 0o644 });
    }
  }
  const lock = createHash('sha256').update(fs.readFileSync(path.join(WORK, 'package-lock.json'))).digest('hex');
  const stamp = path.join(WORK, '.installed-lock-sha256');
  if (fs.existsSync(path.join(WORK, 'node_modules')) && fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === lock) {
    return { npm_ci_s: 0, cached: true };
  }
  const t0 = Date.now();
  log(`npm ci in ${WORK}`);
  execFileSync('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], {
    cwd: WORK, stdio: ['ignore', 'ignore', 'inherit'], timeout: 120_000,
  });
  fs.writeFileSync(stamp, lock);
  return { npm_ci_s: (Date.now() - t0) / 1000, cached: false };
}

/** One reference peer: commands in as JSON lines, results matched by id. */
class Peer {
  constructor(name, args) {
    this.name = name;
    this.nextId = 1;
    this.pending = new Map();
    this.stderr = '';
    this.proc = spawn('node', ['--import', './polyfill.mjs', 'peer.mjs', '--exit-after', '95', ...args], {
      cwd: WORK, stdio: ['pipe', 'pipe', 'pipe'],
    });
    children.add(this.proc);
    this.exited = new Promise((r) => this.proc.on('exit', () => { children.delete(this.proc); r(); }));
    this.proc.stderr.on('data', (d) => { this.stderr = (this.stderr + d).slice(-4000); });
    this.listening = new Promise((resolve, reject) => {
      this.onListening = resolve;
      this.proc.on('exit', (code) => reject(new Error(`${name} exited (${code}): ${this.stderr}`)));
    });
    readline.createInterface({ input: this.proc.stdout }).on('line', (line) => {
      let o;
      try { o = JSON.parse(line); } catch { return; }
      if (o.event === 'listening') this.onListening(o);
      if (o.cmd != null && this.pending.has(o.id)) {
        this.pending.get(o.id)(o);
        this.pending.delete(o.id);
      }
    });
  }

  async start(ms = 20_000) {
    this.info = await withTimeout(this.listening, ms, `${this.name} listening`);
    return this.info;
  }

  cmd(obj, ms = 60_000) {
    const id = this.nextId++;
    const result = new Promise((resolve) => this.pending.set(id, resolve));
    this.proc.stdin.write(JSON.stringify({ ...obj, id }) + '\n');
    return withTimeout(result, ms, `${this.name} ${obj.cmd}`).then((r) => {
      if (!r.ok) throw new Error(`${this.name} ${obj.cmd}: ${r.error}`);
      return r;
    });
  }

  async stop() {
    try { this.proc.stdin.end(); } catch {}
    const ended = await Promise.race([this.exited.then(() => true), sleep(3000).then(() => false)]);
    if (!ended) {
      this.proc.kill('SIGTERM');
      const ended2 = await Promise.race([this.exited.then(() => true), sleep(2000).then(() => false)]);
      if (!ended2) this.proc.kill('SIGKILL');
    }
  }
}

/** CPU seconds (user + system) a process has used so far, from /proc. */
function cpuSeconds(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (Number(fields[11]) + Number(fields[12])) / 100; // USER_HZ = 100 on Linux
  } catch {
    return NaN;
  }
}

function loadavg() {
  try { return Number(fs.readFileSync('/proc/loadavg', 'utf8').split(' ')[0]); } catch { return null; }
}

function withTimeout(p, ms, what) {
  let t;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise((_, reject) => { t = setTimeout(() => reject(new Error(`timeout: ${what}`)), ms); }),
  ]);
}

/** Polls the receiver until its valid count reaches `target` or stops moving. */
async function settle(receiver, base, target) {
  const deadline = Date.now() + 10_000;
  let last = -1;
  let still = 0;
  for (;;) {
    const s = await receiver.cmd({ cmd: 'msgstats' }, 5000);
    const valid = s.valid - base.valid;
    if (valid >= target || Date.now() > deadline) return s;
    still = valid === last ? still + 1 : 0;
    if (still >= 5) return s; // 500 ms without progress
    last = valid;
    await sleep(100);
  }
}

async function main() {
  const setup = install();
  const receiver = new Peer('receiver', MESSAGE_CLOSE ? ['--message-close'] : []);
  const sender = new Peer('sender', []);
  try {
    const [rInfo] = await Promise.all([receiver.start(), sender.start()]);
    const addr = rInfo.addrs.find((a) => a.includes('/tcp/') && !a.includes('/ws')) ?? rInfo.addrs[0];
    const dial = await sender.cmd({ cmd: 'dial', target: addr }, 20_000);
    log(`connected: ${dial.multiplexer} ${dial.encryption}; ${COUNT} messages per run`);
    // Warm-up: first streams, JIT.
    const WARM = MESSAGE_CLOSE ? 100 : 0;
    if (WARM > 0) {
      await sender.cmd({ cmd: 'flood', target: rInfo.peerId, protocolId: MESSAGE_PROTOCOL, count: WARM, msgType: 'warmup', payload: PAYLOAD, concurrency: 1 });
      await settle(receiver, { valid: 0 }, WARM);
    }
    for (const concurrency of CONCURRENCY) {
      const before = await receiver.cmd({ cmd: 'msgstats' }, 5000);
      const cpu0 = [sender, receiver].map((p) => cpuSeconds(p.proc.pid));
      const flood = await sender.cmd({
        cmd: 'flood', target: rInfo.peerId, protocolId: MESSAGE_PROTOCOL, count: COUNT,
        msgType: 'bench', payload: PAYLOAD, concurrency, timeout: 60_000, streamTimeout: 10_000,
      }, 70_000);
      const after = await settle(receiver, before, COUNT);
      const cpu = [sender, receiver].map((p, i) => cpuSeconds(p.proc.pid) - cpu0[i]);
      const delivered = after.valid - before.valid;
      const seconds = flood.elapsedMs / 1000;
      emit({
        scenario: 'js_flood',
        implementation: `js-libp2p 3.3.11 reference peer (seed wire behaviour)${MESSAGE_CLOSE ? ', receiver --message-close' : ', seed receiver (never closes)'}`,
        protocol: MESSAGE_PROTOCOL,
        muxer: dial.multiplexer,
        payload_bytes: 256,
        concurrency,
        count: COUNT,
        sender_succeeded: flood.succeeded,
        sender_failed: flood.failed,
        sender_errors: flood.errors,
        received: delivered,
        loss: COUNT - delivered,
        loss_pct: Math.round((1000 * (COUNT - delivered)) / COUNT) / 10,
        receiver_invalid: after.invalid - before.invalid,
        receiver_duplicate: after.duplicate - before.duplicate,
        elapsed_s: seconds,
        per_second_attempted: flood.perSecond,
        msgs_per_s: Math.round(delivered / seconds),
        // CPU of both peers from the flood's start to the receiver settling
        // (includes up to 0.5 s of settling); a figure less sensitive to other load.
        cpu_s: { sender: cpu[0], receiver: cpu[1] },
        cpu_ms_per_delivered: Math.round((1e5 * (cpu[0] + cpu[1])) / Math.max(delivered, 1)) / 100,
        loadavg_1m: loadavg(),
        npm_ci_s: setup.npm_ci_s,
      });
    }
  } finally {
    await Promise.all([sender.stop(), receiver.stop()]);
  }
}

main().then(() => {
  clearTimeout(overall);
}, (err) => {
  log(`failed: ${err?.stack ?? err}`);
  emit({ scenario: 'js_flood', skipped: `error: ${err?.message ?? err}` });
  clearTimeout(overall);
  cleanupAndExit(1);
});

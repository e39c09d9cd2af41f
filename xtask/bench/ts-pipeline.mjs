// Baseline for BENCHMARKS.md: the TypeScript system's whole message pipeline
// (seed-study §3) re-enacted in Node.js with a 256-byte payload: create
// (Date.now + base36/hex messageId), JSON.stringify, UTF-8 encode, JSON.parse,
// validateMessage, HMAC-SHA256 dedup hash, seen-set insert with its FIFO eviction.
// Run by `cargo xtask bench`; prints one JSON line.
import { createHmac, randomBytes } from 'node:crypto';

const HASH_KEY = 'lotus-lib-p2p-message-hash-key';
const payload = { text: 'x'.repeat(256 - 11) }; // JSON.stringify(payload).length === 256
const from = '12D3KooWEoMFqkfQ6XyQyqdrXGbpkbHg8zvR7nGfBiZXDLoNEPKR';

function createMessage(type, body) {
  return {
    type, from, payload: body, timestamp: Date.now(),
    messageId: `${Date.now().toString(36)}-${randomBytes(8).toString('hex')}`,
  };
}

function validate(m) {
  if (!m.type || typeof m.type !== 'string') return false;
  if (!m.from || typeof m.from !== 'string') return false;
  if (!m.timestamp || typeof m.timestamp !== 'number') return false;
  if (!m.messageId || typeof m.messageId !== 'string') return false;
  return Math.abs(Date.now() - m.timestamp) <= 300000;
}

function hash(m) {
  return createHmac('sha256', HASH_KEY).update(m.type + m.from + (m.to || '') + m.messageId).digest('hex');
}

const seen = new Set();
function run(n) {
  let accepted = 0;
  for (let i = 0; i < n; i++) {
    const wire = Buffer.from(JSON.stringify(createMessage('chat', payload)), 'utf8');
    const m = JSON.parse(wire.toString('utf8'));
    if (!validate(m)) continue;
    const h = hash(m);
    if (seen.has(h)) continue;
    seen.add(h);
    if (seen.size > 10000) {
      let k = 0;
      for (const old of seen) { seen.delete(old); if (++k >= 1000) break; }
    }
    accepted++;
  }
  return accepted;
}

// TS_PIPELINE_MESSAGES: messages measured (default 300 000; `cargo xtask
// bench --quick` runs a few thousand only to show the script still works).
const n = Number(process.env.TS_PIPELINE_MESSAGES ?? 300000);
run(Math.ceil(n / 6)); // warm up the JIT
const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
const accepted = run(n);
const ns = Number(process.hrtime.bigint() - t0);
const cpu = process.cpuUsage(cpu0);
console.log(JSON.stringify({
  bench: 'ts_pipeline_256B', node: process.version, messages: n, accepted,
  msgPerSec: Math.round(n / (ns / 1e9)), wallNsPerMsg: Math.round(ns / n),
  cpuUsPerMsg: +(((cpu.user + cpu.system) / n).toFixed(2)),
}));

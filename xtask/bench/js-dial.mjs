// Baseline for the p2p-core `node` bench: js-libp2p (the reference peer's
// pinned versions and node setup: TCP + WebSockets, Noise, yamux + mplex,
// identify, ping, kad-dht client mode) on TCP loopback, measuring
//   - dial → both sides `peer:connect`, and → also the dialer's `peer:identify`
//     (the Rust bench's measure), for DIALS dials, each a new TCP connection
//     (hang up, both sides see `peer:disconnect`, dial again);
//   - the RSS of this Node.js process with 2 idle connected nodes.
// Run by `cargo xtask bench` from a copy of interop/js-peer after `npm ci`:
//   node --import ./polyfill.mjs js-dial.mjs
// Prints one JSON line. Percentiles are nearest-rank, median = lower middle,
// as in the Rust bench.
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { webSockets } from '@libp2p/websockets'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { mplex } from '@libp2p/mplex'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'

const DIALS = Number(process.env.DIALS ?? 200)
const WARMUP = 10
const WAIT_MS = 30_000
const SETTLE_MS = 2_000

const mib = (bytes) => Math.round(bytes / 1048576 * 100) / 100
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function withTimeout (promise, what) {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), WAIT_MS)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

// Resolves with the time of the first `type` event matching `pred`.
function when (node, type, pred) {
  return new Promise((resolve) => {
    const handler = (evt) => {
      if (!pred(evt.detail)) return
      node.removeEventListener(type, handler)
      resolve(performance.now())
    }
    node.addEventListener(type, handler)
  })
}

function summary (values) {
  const v = [...values].sort((a, b) => a - b)
  const rank = (p) => v[Math.min(v.length, Math.max(1, Math.ceil(p / 100 * v.length))) - 1]
  const r3 = (x) => Math.round(x * 1000) / 1000
  return {
    median: r3(rank(50)),
    p90: r3(rank(90)),
    p99: r3(rank(99)),
    min: r3(v[0]),
    max: r3(v[v.length - 1]),
    mean: r3(v.reduce((a, b) => a + b, 0) / v.length)
  }
}

function makeNode () {
  return createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp(), webSockets()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux(), mplex()],
    // js-libp2p refuses more than 5 inbound connections per second from one
    // host by default (inboundConnectionThreshold); lift that for this loop.
    connectionManager: { inboundConnectionThreshold: 1_000_000 },
    services: {
      identify: identify(),
      ping: ping(),
      dht: kadDHT({
        protocol: '/lotus/kad/1.0.0',
        clientMode: true,
        peerInfoMapper: passthroughMapper
      })
    }
  })
}

async function dialOnce (a, b, target) {
  const aSees = when(a, 'peer:connect', (p) => p.equals(b.peerId))
  const bSees = when(b, 'peer:connect', (p) => p.equals(a.peerId))
  const identified = when(a, 'peer:identify', (r) => r.peerId.equals(b.peerId))
  const start = performance.now()
  await withTimeout(a.dial(target), 'dial')
  const [ta, tb, ti] = await withTimeout(Promise.all([aSees, bSees, identified]), 'connect events')
  return { connected: Math.max(ta, tb) - start, identified: Math.max(ta, tb, ti) - start }
}

async function hangUp (a, b) {
  const aGone = when(a, 'peer:disconnect', (p) => p.equals(b.peerId))
  const bGone = when(b, 'peer:disconnect', (p) => p.equals(a.peerId))
  await withTimeout(a.hangUp(b.peerId), 'hang up')
  await withTimeout(Promise.all([aGone, bGone]), 'disconnect events')
}

const rssBefore = process.memoryUsage().rss
const a = await makeNode()
const b = await makeNode()
const target = b.getMultiaddrs().find((m) => !m.toString().includes('/ws'))

// RSS with the two nodes connected and idle.
await dialOnce(a, b, target)
await sleep(SETTLE_MS)
const idle = process.memoryUsage()
await hangUp(a, b)

const connected = []
const identified = []
for (let i = 0; i < WARMUP + DIALS; i++) {
  const t = await dialOnce(a, b, target)
  if (i >= WARMUP) {
    connected.push(t.connected)
    identified.push(t.identified)
  }
  await hangUp(a, b)
}
await a.stop()
await b.stop()

console.log(JSON.stringify({
  bench: 'js_dial',
  node: process.version,
  libp2p: '3.3.11',
  transport: 'tcp 127.0.0.1',
  dht_mode: 'client',
  dials: DIALS,
  connected_both_ms: summary(connected),
  connected_identified_ms: summary(identified),
  rss_before_nodes_mib: mib(rssBefore),
  rss_2_idle_connected_nodes_mib: mib(idle.rss),
  heap_used_2_idle_nodes_mib: mib(idle.heapUsed)
}))
process.exit(0)

/**
 * One process of the WebRTC hole-punching spike (scripts/spike-webrtc.ts): a plain libp2p node, role `relay`
 * (circuit relay server + STUN responder on the WAN), `listener` (B, behind a NAT: a reservation and a
 * `/webrtc` listen address) or `dialer` (A, behind another NAT: dials B's `/p2p-circuit/webrtc` address when
 * told to on stdin, then times 50 MB over the WebRTC link and over the relayed one). JSON lines on stdout.
 */
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { identify } from '@libp2p/identify'
import type { Connection, Stream } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import { webRTC } from '@libp2p/webrtc'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { createInterface } from 'node:readline'
import { startStunServer } from '../node/p2p/stun.ts'

const [role, relayIp, relayPeer, listenerPeer] = process.argv.slice(2)
const out = (o: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify({ role, t: Date.now(), ...o })}\n`)
}
const seed = (n: number): Uint8Array => new Uint8Array(32).fill(n)
const SEEDS = { relay: 1, listener: 2, dialer: 3 } as Record<string, number>
const SINK = '/spike/sink/1'
const BYTES = Number(process.env.SPIKE_BYTES ?? 50 * 1024 * 1024)

const privateKey = await generateKeyPairFromSeed('Ed25519', seed(SEEDS[role ?? ''] ?? 0))
const rtcConfiguration = { iceServers: [{ urls: `stun:${relayIp}:3478` }] }
const node = await createLibp2p({
  privateKey,
  addresses: {
    listen: role === 'relay' ? [`/ip4/${relayIp}/tcp/4001`] : ['/ip4/0.0.0.0/tcp/0', '/p2p-circuit', '/webrtc']
  },
  transports: [tcp(), circuitRelayTransport(), ...(role === 'relay' ? [] : [webRTC({ rtcConfiguration })])],
  connectionEncrypters: [noise()],
  // Which gater hooks a WebRTC connection goes through; SPIKE_DENY_WEBRTC=1 makes the listener refuse it at the
  // upgraded stage (as radmesh's membership gater would refuse a non-member).
  connectionGater: Object.fromEntries(
    (
      [
        'denyInboundEncryptedConnection',
        'denyOutboundEncryptedConnection',
        'denyInboundUpgradedConnection',
        'denyOutboundUpgradedConnection'
      ] as const
    ).map(hook => [
      hook,
      (peer: { toString(): string }, maConn: { remoteAddr: { toString(): string } }) => {
        const addr = maConn.remoteAddr.toString()
        if (!addr.includes('/webrtc')) return false
        const deny = process.env.SPIKE_DENY_WEBRTC === '1' && hook === 'denyInboundUpgradedConnection'
        out({ event: 'gater', hook, peer: peer.toString(), addr, deny })
        return deny
      }
    ])
  ),
  streamMuxers: [yamux()],
  connectionManager: {
    dialTimeout: Number(process.env.SPIKE_DIAL_MS ?? 30_000),
    addressDialTimeout: Number(process.env.SPIKE_DIAL_MS ?? 30_000)
  },
  services: {
    identify: identify(),
    ...(role === 'relay' ? { relay: circuitRelayServer({ reservations: { applyDefaultLimit: false } }) } : {})
  }
})

/** The sink: reads a 8-byte length, then that many bytes, then answers one byte. */
await node.handle(
  SINK,
  async (stream: Stream) => {
    let want = -1
    let got = 0
    for await (const chunk of stream) {
      const bytes = chunk instanceof Uint8Array ? chunk : chunk.subarray()
      let body = bytes
      if (want < 0) {
        want = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0))
        body = bytes.subarray(8)
      }
      got += body.byteLength
      if (got >= want) break
    }
    stream.send(new Uint8Array([1]))
    await stream.close()
  },
  { runOnLimitedConnection: true }
)

const describe = (c: Connection): Record<string, unknown> => ({
  addr: c.remoteAddr.toString(),
  direction: c.direction,
  limited: c.limits !== undefined,
  status: c.status,
  multiplexer: c.multiplexer,
  encryption: c.encryption
})

async function throughput(connection: Connection): Promise<Record<string, unknown>> {
  const cpu0 = process.cpuUsage()
  const started = performance.now()
  const stream = await connection.newStream(SINK, { runOnLimitedConnection: true })
  const header = new Uint8Array(8)
  new DataView(header.buffer).setBigUint64(0, BigInt(BYTES))
  stream.send(header)
  const chunk = new Uint8Array(64 * 1024).fill(7)
  let sent = 0
  while (sent < BYTES) {
    const piece = BYTES - sent >= chunk.length ? chunk : chunk.subarray(0, BYTES - sent)
    sent += piece.length
    if (!stream.send(piece)) await stream.onDrain()
  }
  for await (const _ of stream) break
  const seconds = (performance.now() - started) / 1000
  const cpu = process.cpuUsage(cpu0)
  await stream.close().catch(() => {})
  return {
    addr: connection.remoteAddr.toString(),
    mb: BYTES / 1048576,
    seconds: Number(seconds.toFixed(2)),
    mbPerS: Number((BYTES / 1048576 / seconds).toFixed(1)),
    cpuSeconds: Number(((cpu.user + cpu.system) / 1e6).toFixed(2))
  }
}

node.addEventListener('connection:open', e => out({ event: 'open', ...describe(e.detail) }))
node.addEventListener('connection:close', e => out({ event: 'close', ...describe(e.detail) }))
await node.start()
if (role === 'relay') {
  await startStunServer(relayIp as string, 3478)
  out({ event: 'ready', peer: node.peerId.toString(), addrs: node.getMultiaddrs().map(String) })
} else {
  const relayAddr = multiaddr(`/ip4/${relayIp}/tcp/4001/p2p/${relayPeer}`)
  await node.dial(relayAddr)
  // ready once the reservation is held: a /p2p-circuit/webrtc address of our own
  for (let i = 0; i < 200; i++) {
    if (node.getMultiaddrs().some(a => a.toString().includes('/p2p-circuit/webrtc'))) break
    await new Promise(r => setTimeout(r, 100))
  }
  out({ event: 'ready', peer: node.peerId.toString(), addrs: node.getMultiaddrs().map(String) })
}

if (role === 'dialer') {
  const lines = createInterface({ input: process.stdin })
  for await (const line of lines) {
    if (line.trim() !== 'go') continue
    const target = multiaddr(`/ip4/${relayIp}/tcp/4001/p2p/${relayPeer}/p2p-circuit/webrtc/p2p/${listenerPeer}`)
    const started = performance.now()
    try {
      const conn = await node.dial(target, { signal: AbortSignal.timeout(Number(process.env.SPIKE_DIAL_MS ?? 30_000)) })
      out({ event: 'dialed', ms: Math.round(performance.now() - started), ...describe(conn) })
      const webrtc = await throughput(conn)
      out({ event: 'throughput', kind: 'webrtc', ...webrtc })
    } catch (error) {
      out({ event: 'dial-failed', ms: Math.round(performance.now() - started), error: String(error) })
    }
    const connections = node.getConnections().map(describe)
    out({ event: 'connections', connections })
    const relayed = node
      .getConnections()
      .find(c => c.remotePeer.toString() === listenerPeer && !c.remoteAddr.toString().includes('/webrtc'))
    if (relayed !== undefined && process.env.SPIKE_RELAYED !== '0') {
      out({ event: 'throughput', kind: 'relayed', ...(await throughput(relayed)) })
    }
    out({ event: 'done' })
  }
}

/**
 * Spike: does UDP hole punching with @libp2p/webrtc work between two libp2p nodes each behind its own NAT?
 * Builds the netns topology (scripts/lib/netns.ts) with the WAN on 11.99.0.0/24, runs a relay (circuit relay
 * server + STUN) on the WAN and a node behind each NAT (scripts/spike-webrtc-node.ts); the dialer dials the
 * listener's `/p2p-circuit/webrtc` address and times 50 MB over the WebRTC link and over the relay.
 *
 *   node scripts/spike-webrtc.ts [cone|symmetric] [cone|symmetric]     (NAT A, NAT B; root)
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { buildNatTopology, type NatKind } from './lib/netns.ts'

const natA = (process.argv[2] ?? 'cone') as NatKind
const natB = (process.argv[3] ?? 'cone') as NatKind
const peer = async (n: number): Promise<string> =>
  peerIdFromPrivateKey(await generateKeyPairFromSeed('Ed25519', new Uint8Array(32).fill(n))).toString()
const [relayPeer, listenerPeer] = [await peer(1), await peer(2)]
const wan = '11.99.0'
const net = buildNatTopology({ wan, natA, natB })
const script = join(import.meta.dirname, 'spike-webrtc-node.ts')
const children: ChildProcessWithoutNullStreams[] = []
const events: Array<Record<string, unknown>> = []
const t0 = Date.now()
const roles: string[] = []

/** CPU seconds (user + system) each child has used so far, from /proc (`ip netns exec` execs node in place). */
const cpuOf = (child: ChildProcessWithoutNullStreams): number => {
  const fields = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []
  return (Number(fields[11]) + Number(fields[12])) / 100
}
let lastCpu: number[] = []
/** CPU each process used since the last mark: the relay, the listener, the dialer. */
const cpuMark = (label: string): void => {
  const now = children.map(cpuOf)
  if (lastCpu.length > 0) {
    const used = now.map((n, i) => `${roles[i]} ${(n - (lastCpu[i] ?? 0)).toFixed(2)}s`).join(', ')
    process.stdout.write(`  CPU during ${label}: ${used}\n`)
  }
  lastCpu = now
}

function start(ns: string, role: string): ChildProcessWithoutNullStreams {
  const child = spawn(
    'ip',
    ['netns', 'exec', ns, process.execPath, script, role, `${wan}.1`, relayPeer, listenerPeer],
    {
      env: { ...process.env },
      stdio: ['pipe', 'pipe', 'pipe']
    }
  )
  children.push(child)
  roles.push(role)
  let buffer = ''
  child.stdout.on('data', (chunk: Buffer) => {
    buffer += chunk.toString()
    for (let i = buffer.indexOf('\n'); i >= 0; i = buffer.indexOf('\n')) {
      const line = buffer.slice(0, i)
      buffer = buffer.slice(i + 1)
      try {
        const event = JSON.parse(line) as Record<string, unknown>
        events.push(event)
        if (event.event === 'dialed' || event.event === 'dial-failed') cpuMark('the dial')
        if (event.event === 'throughput') cpuMark(`the ${String(event.kind)} transfer`)
        process.stdout.write(`+${((Number(event.t) - t0) / 1000).toFixed(2)}s ${line}\n`)
      } catch {
        process.stdout.write(`[${role}] ${line}\n`)
      }
    }
  })
  child.stderr.on('data', (chunk: Buffer) => process.stderr.write(`[${role} err] ${chunk}`))
  return child
}

const waitEvent = async (role: string, event: string, ms: number): Promise<Record<string, unknown>> => {
  const until = Date.now() + ms
  while (Date.now() < until) {
    const found = events.find(e => e.role === role && e.event === event)
    if (found !== undefined) return found
    await new Promise(r => setTimeout(r, 50))
  }
  throw new Error(`no ${event} from ${role} within ${ms} ms`)
}

try {
  process.stdout.write(`NAT A ${natA}, NAT B ${natB}; relay ${relayPeer}, listener ${listenerPeer}\n`)
  start(net.ns.wan, 'relay')
  await waitEvent('relay', 'ready', 20_000)
  start(net.ns.reader, 'listener')
  const dialer = start(net.ns.site, 'dialer')
  await waitEvent('listener', 'ready', 30_000)
  await waitEvent('dialer', 'ready', 30_000)
  cpuMark('start')
  dialer.stdin.write('go\n')
  await waitEvent('dialer', 'done', 180_000)
  await new Promise(r => setTimeout(r, Number(process.env.SPIKE_LINGER_MS ?? 0)))
} finally {
  for (const child of children) child.kill('SIGKILL')
  net.teardown()
}
process.exit(0)

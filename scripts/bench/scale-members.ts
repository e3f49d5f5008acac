/**
 * Part 2 of the scale benchmark, a hundred members: idle traffic per node and how fast a worklist change
 * reaches the members it concerns, at each size. A hundred full nodes in a hundred processes do not fit this
 * machine, so each size runs its nodes in this one process (createNode: real libp2p over TCP, real Noise and
 * member handshake, real LevelDB, one HTTP server each); one run of --processes nodes in separate processes
 * (scale-members-processes.ts) checks that the in-process figures hold.
 *
 * Per size: start every node (sites first), wait until every node knows every member and each reader holds
 * its cases, let the first exchanges settle, then an idle window (--idle-seconds) in which bytes are counted
 * on every libp2p socket (scale-probe.ts) and CPU time taken; then --changes changes: half new cases (a site
 * publishes one for three of its readers), half claims (a reader takes a case: the site and the case's other
 * readers must learn it), each timed to its arrival at every member it concerns.
 */
import { promises as fs } from 'node:fs'
import type { WorklistRecord } from '../../protocol/collab/records.ts'
import type { PeerIdString } from '../../protocol/ids.ts'
import { caseIdFor } from '../../node/workflow/workflow.ts'
import type { Worklist } from '../../node/worklist/worklist.ts'
import { createNode, type RunningNode } from '../../node/node.ts'
import type { RadmeshHost } from '../../node/p2p/host.ts'
import { tempDir } from '../lib/temp.ts'
import { waitFor } from '../lib/wait.ts'
import { say } from './scale-common.ts'
import {
  type BenchConsortium,
  type BenchMember,
  CASES_PER_SITE,
  makeConsortium,
  type MembersOptions,
  type MembersRow,
  peersOf,
  printMembers,
  readersOf,
  routeTo,
  siteCount,
  startOnFreePort
} from './scale-members-setup.ts'
import { runInProcesses } from './scale-members-processes.ts'
import { socketBytes, type WatchedSocket, watchSockets } from './scale-probe.ts'

/** After every member is known: the exchanges of the first minutes (digests, inventories) settle. */
const SETTLE_MS = 8_000
/** Between two changes. */
const CHANGE_GAP_MS = 150

const sockets = watchSockets()

/**
 * The nodes of this process log warnings to stderr (one JSON line each): counted and kept out of the tables,
 * the first few printed after them.
 */
const warnings: string[] = []
let warningCount = 0
const writeStderr = process.stderr.write.bind(process.stderr)
process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]): boolean => {
  const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString()
  const write = writeStderr as (c: string | Uint8Array, ...r: unknown[]) => boolean
  if (!text.startsWith('{"level":')) return write(chunk, ...rest)
  warningCount++
  if (warnings.length < 5) warnings.push(text.trim().slice(0, 400))
  return true
}) as typeof process.stderr.write

/** What the benchmark uses of a node started here. */
type BenchNode = RunningNode & { host: RadmeshHost; worklist: Worklist }
interface Running {
  member: BenchMember
  node: BenchNode
  arrivals: Map<string, number>
}

/**
 * Per node, the bytes its libp2p sockets moved since `before`: an inbound socket is its listener's, an outbound
 * one the dialer's, found in the listener's connections by the socket's local port.
 */
function bytesPerNode(
  running: Running[],
  before: Map<WatchedSocket, number>
): { bytes: number[]; unattributed: number } {
  const byPort = new Map(running.map((r, i) => [r.member.p2pPort, i]))
  const byPeer = new Map(running.map((r, i) => [r.member.peerId, i]))
  const bytes = running.map(() => 0)
  let unattributed = 0
  for (const watched of sockets) {
    const listener = byPort.get(watched.inbound ? watched.localPort : watched.remotePort)
    if (listener === undefined) continue
    const { sent, received } = socketBytes(watched)
    const moved = sent + received - (before.get(watched) ?? 0)
    if (moved === 0) continue
    let owner: number | undefined = listener
    if (!watched.inbound) {
      const port = new RegExp(`/tcp/${watched.localPort}(/|$)`)
      const link = (running[listener] as Running).node.host
        .getConnections()
        .find(c => port.test(c.remoteAddr.toString()))
      owner = link === undefined ? undefined : byPeer.get(link.remotePeer.toString())
    }
    if (owner === undefined) unattributed += moved
    else bytes[owner] = (bytes[owner] ?? 0) + moved
  }
  return { bytes, unattributed }
}

const snapshot = (): Map<WatchedSocket, number> =>
  new Map(
    sockets.map(w => {
      const b = socketBytes(w)
      return [w, b.sent + b.received]
    })
  )

function links(running: Running[]): number {
  let open = 0
  for (const r of running) open += r.node.host.getConnections().filter(c => c.status === 'open').length
  return open / 2
}

/** Publishes a new case at a site for three of its readers; the readers' arrival times are keyed `case:ID:kind`. */
async function publish(bench: BenchConsortium, site: Running, n: number): Promise<{ key: string; to: number[] }> {
  const own = readersOf(bench, site.member)
  const readers = routeTo(own, n)
  const studyUid = `2.25.${Date.now()}${n}`
  const caseId = caseIdFor(site.member.peerId, studyUid)
  const now = new Date()
  await site.node.worklist.publishCase({
    caseId,
    studyUid,
    siteName: site.member.name,
    priority: 'ROUTINE',
    subspecialty: 'general',
    modalities: ['CT'],
    bodyPart: 'HEAD',
    readers: readers.map(r => r.peerId).sort() as PeerIdString[],
    createdAt: now.toISOString(),
    dueAt: new Date(now.getTime() + 86_400_000).toISOString()
  })
  return { key: `${caseId}:case`, to: readers.map(r => r.index) }
}

/** A reader of an open case nobody holds claims it; the site and the other readers must learn it. */
type Change = { key: string; to: number[] }

async function claim(running: Running[], taken: Set<string>, random: () => number): Promise<Change | undefined> {
  const readers = running.filter(r => r.member.role === 'radiologist')
  for (let attempt = 0; attempt < 50; attempt++) {
    const reader = readers[Math.floor(random() * readers.length)] as Running
    const me = reader.member.peerId as PeerIdString
    const open = reader.node.worklist
      .liveCases()
      .filter(c => c.status === 'SCHEDULED' && !taken.has(c.caseId) && c.readers.includes(me))
    const state = open[Math.floor(random() * open.length)]
    if (state === undefined) continue
    taken.add(state.caseId)
    await reader.node.worklist.claim(state.caseId)
    const concerned = (r: Running): boolean =>
      r.member.peerId === state.site || state.readers.includes(r.member.peerId as PeerIdString)
    const to = running.filter(r => r !== reader && concerned(r)).map(r => r.member.index)
    return { key: `${state.caseId}:claim`, to }
  }
  return undefined
}

async function runInProcess(members: number, options: MembersOptions): Promise<MembersRow> {
  const root = await tempDir('radmesh-scale-members-')
  const bench = await makeConsortium(root, members)
  const baseRss = process.memoryUsage().rss
  const running: Running[] = []
  const begun = performance.now()
  try {
    for (const member of [...bench.sites, ...bench.readers]) {
      const node = await startOnFreePort(
        member,
        async () =>
          (await createNode({
            home: member.home,
            listen: [`/ip4/127.0.0.1/tcp/${member.p2pPort}`],
            http: '127.0.0.1:0',
            mdns: false,
            peers: peersOf(bench, member),
            preallocateBytes: 0
          })) as BenchNode
      )
      const arrivals = new Map<string, number>()
      node.worklist.onChange(records => {
        const at = performance.now()
        for (const record of records as WorklistRecord[]) {
          if (record.kind !== 'case' && record.kind !== 'claim') continue
          const key = `${record.caseId}:${record.kind}`
          if (!arrivals.has(key)) arrivals.set(key, at)
        }
      })
      running.push({ member, node, arrivals })
    }
    running.sort((a, b) => a.member.index - b.member.index)
    const startSeconds = (performance.now() - begun) / 1000
    const casesOf = (r: Running): number => r.node.worklist.liveCases().length
    const expected = (r: Running): number => (r.member.role === 'site' ? CASES_PER_SITE : 0)
    await waitFor(
      'every node to know every member, every site its cases',
      () => running.every(r => r.node.worklist.memberCertificates().length >= members && casesOf(r) >= expected(r)),
      300_000,
      250
    )
    await waitFor(
      'every reader to hold the cases routed to it',
      () => {
        const routed = new Map<string, number>()
        for (const site of running.filter(r => r.member.role === 'site')) {
          for (const c of site.node.worklist.liveCases()) {
            for (const reader of c.readers) routed.set(reader, (routed.get(reader) ?? 0) + 1)
          }
        }
        return running.every(r => r.member.role === 'site' || casesOf(r) >= (routed.get(r.member.peerId) ?? 0))
      },
      120_000,
      250
    )
    const meshSeconds = (performance.now() - begun) / 1000
    await new Promise(resolve => setTimeout(resolve, SETTLE_MS))

    const rssMbPerNode = (process.memoryUsage().rss - baseRss) / 2 ** 20 / members
    const before = snapshot()
    const cpuBefore = process.cpuUsage()
    const idleBegun = performance.now()
    await new Promise(resolve => setTimeout(resolve, options.idleSeconds * 1000))
    const idleMs = performance.now() - idleBegun
    const cpu = process.cpuUsage(cpuBefore)
    const { bytes, unattributed } = bytesPerNode(running, before)
    const open = links(running)
    const perMinute = bytes.map(b => (b / idleMs) * 60_000)

    let seed = 14
    const random = (): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      return seed / 2 ** 31
    }
    const sent: Array<{ key: string; to: number[]; at: number; kind: 'case' | 'claim' }> = []
    const taken = new Set<string>()
    for (let n = 0; n < options.changes; n++) {
      const at = performance.now()
      if (n % 2 === 0) {
        const site = running[(n / 2) % bench.sites.length] as Running
        sent.push({ ...(await publish(bench, site, n)), at, kind: 'case' })
      } else {
        const change = await claim(running, taken, random)
        if (change !== undefined) sent.push({ ...change, at, kind: 'claim' })
      }
      await new Promise(resolve => setTimeout(resolve, CHANGE_GAP_MS))
    }
    const arrivalAt = (i: number, key: string): number | undefined => (running[i] as Running).arrivals.get(key)
    const arrived = (): number =>
      sent.reduce((sum, s) => sum + s.to.filter(i => arrivalAt(i, s.key) !== undefined).length, 0)
    const total = sent.reduce((sum, s) => sum + s.to.length, 0)
    await waitFor('every change to arrive', () => arrived() === total, 15_000, 50).catch(() => {})
    const delays = (kind: 'case' | 'claim'): number[] =>
      sent
        .filter(s => s.kind === kind)
        .flatMap(s =>
          s.to.flatMap(i => {
            const t = arrivalAt(i, s.key)
            return t === undefined ? [] : [t - s.at]
          })
        )
    return {
      mode: 'in-process',
      members,
      sites: siteCount(members),
      links: open,
      startSeconds,
      meshSeconds,
      rssMbPerNode,
      cpuIdlePercentPerNode: (((cpu.user + cpu.system) / 1000 / idleMs) * 100) / members,
      idleBytesPerMinute: perMinute,
      idleBytesPerLinkMinute: perMinute.reduce((a, b) => a + b, 0) / 2 / Math.max(1, open),
      published: delays('case'),
      claimed: delays('claim'),
      missing: total - arrived(),
      note: unattributed === 0 ? '' : `${unattributed} idle bytes on links closed in the window (not in the figures)`
    }
  } finally {
    for (const r of running.reverse()) await r.node.stop().catch(() => {})
    await fs.rm(root, { recursive: true, force: true })
  }
}

export async function membersPart(options: MembersOptions): Promise<void> {
  say(
    `== part 2: members (one site per ten members, each radiologist reading for two sites; ` +
      `${options.idleSeconds} s idle window) ==`
  )
  say('the in-process runs start every node in this one process: real libp2p (TCP, Noise, member handshake, yamux),')
  say("real LevelDB, an HTTP server each; memory and CPU per node are the process's divided by the nodes")
  const rows: MembersRow[] = []
  // Each run's row is printed once it is measured: a later run that fails (a port taken, a timeout) loses nothing.
  const run = async (what: string, measure: () => Promise<MembersRow>): Promise<void> => {
    say(`${what} ...`)
    try {
      const row = await measure()
      rows.push(row)
      printMembers([row], false)
    } catch (error) {
      say(`${what}: failed: ${(error as Error).message.split('\n').slice(0, 3).join(' ')}`)
    }
  }
  for (const members of options.sizes) {
    await run(`${members} members in one process`, async () => await runInProcess(members, options))
  }
  const processes = options.processes
  if (processes > 0) {
    await run(`${processes} members in ${processes} processes`, async () => await runInProcesses(processes, options))
  }
  say()
  printMembers(rows, true)
  if (warningCount > 0) {
    say(`the in-process nodes logged ${warningCount} warnings; the first:\n${warnings.join('\n')}\n`)
  }
}

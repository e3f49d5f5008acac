/**
 * The check of part 2's in-process figures: the same consortium shape with every node in its own
 * `radmesh start` process, the probe (scale-probe.ts) counting each one's libp2p bytes, /proc giving its CPU
 * time and RSS. Changes are claims through the HTTP API (a site publishes cases only for studies that arrive
 * by DICOM); their arrival is polled on each member's `/api/worklist`, every POLL_MS.
 */
import { promises as fs } from 'node:fs'
import { tempDir } from '../lib/temp.ts'
import { waitFor } from '../lib/wait.ts'
import { cpuSecondsOf, type ProbedNode, rssOf, startProbed } from './scale-common.ts'
import {
  type BenchMember,
  CASES_PER_SITE,
  makeConsortium,
  type MembersOptions,
  type MembersRow,
  peersOf,
  siteCount,
  startOnFreePort
} from './scale-members-setup.ts'

const SETTLE_MS = 8_000
const POLL_MS = 25
const CHANGE_GAP_MS = 150

interface Entry {
  caseId: string
  status: string
  claimedBy: string | null
  readers: string[]
  site: string
}

export async function runInProcesses(members: number, options: MembersOptions): Promise<MembersRow> {
  const root = await tempDir('radmesh-scale-processes-')
  const bench = await makeConsortium(root, members)
  const nodes: ProbedNode[] = []
  const begun = performance.now()
  try {
    for (const member of [...bench.sites, ...bench.readers]) {
      const start = async (): Promise<ProbedNode> =>
        await startProbed(member.home, { p2pPort: member.p2pPort, peers: peersOf(bench, member), preallocateMib: 0 })
      nodes[member.index] = await startOnFreePort(member, start)
    }
    const startSeconds = (performance.now() - begun) / 1000
    const worklistOf = async (node: ProbedNode): Promise<Entry[]> =>
      (await node.api<Entry[]>('GET', '/api/worklist?closed=0')).body
    const nodeOf = (member: BenchMember): ProbedNode => nodes[member.index] as ProbedNode
    const radiologists = bench.readers.length
    await waitFor(
      'every node to know every radiologist, every reader its cases',
      async () => {
        for (const member of bench.members) {
          const node = nodes[member.index] as ProbedNode
          if ((await node.api<unknown[]>('GET', '/api/duty')).body.length < radiologists - 1) return false
          if (member.role === 'site' && (await worklistOf(node)).length < CASES_PER_SITE) return false
        }
        const routed = new Map<string, number>()
        for (const site of bench.sites) {
          for (const c of await worklistOf(nodeOf(site))) {
            for (const r of c.readers) routed.set(r, (routed.get(r) ?? 0) + 1)
          }
        }
        for (const reader of bench.readers) {
          if ((await worklistOf(nodeOf(reader))).length < (routed.get(reader.peerId) ?? 0)) return false
        }
        return true
      },
      300_000,
      1000
    )
    const meshSeconds = (performance.now() - begun) / 1000
    await new Promise(resolve => setTimeout(resolve, SETTLE_MS))

    const samples = async (): Promise<Array<{ bytes: number; cpu: number; sockets: number }>> =>
      await Promise.all(
        nodes.map(async node => {
          const sample = await node.sample()
          const cpu = await cpuSecondsOf(node.process.pid)
          return { bytes: sample.sent + sample.received, cpu, sockets: sample.sockets }
        })
      )
    const before = await samples()
    const idleBegun = performance.now()
    await new Promise(resolve => setTimeout(resolve, options.idleSeconds * 1000))
    const after = await samples()
    const idleMs = performance.now() - idleBegun
    const perMinute = after.map((a, i) => ((a.bytes - (before[i]?.bytes ?? 0)) / idleMs) * 60_000)
    const cpuPercent = after.map((a, i) => ((a.cpu - (before[i]?.cpu ?? 0)) / idleMs) * 1000 * 100)
    const rss = await Promise.all(nodes.map(async node => (await rssOf(node.process.pid)).rss))
    const links = after.reduce((sum, a) => sum + a.sockets, 0) / 2

    // Claims: a reader takes an open case; the site and the other readers must show it claimed by that reader.
    const claimed: number[] = []
    let missing = 0
    const taken = new Set<string>()
    for (let n = 0; n < Math.ceil(options.changes / 2); n++) {
      const reader = bench.readers[(n * 7) % bench.readers.length]
      if (reader === undefined) break
      const node = nodes[reader.index] as ProbedNode
      const entry = (await worklistOf(node)).find(
        c => c.status === 'SCHEDULED' && c.claimedBy === null && !taken.has(c.caseId)
      )
      if (entry === undefined) continue
      taken.add(entry.caseId)
      const targets = bench.members.filter(
        m => m !== reader && (m.peerId === entry.site || entry.readers.includes(m.peerId))
      )
      const at = performance.now()
      const { status } = await node.api('POST', `/api/worklist/${entry.caseId}/claim`)
      if (status !== 200) throw new Error(`claim by ${reader.name} answered ${status}`)
      await Promise.all(
        targets.map(async target => {
          try {
            await waitFor(
              'a claim to arrive',
              async () =>
                (await worklistOf(nodeOf(target))).find(c => c.caseId === entry.caseId)?.claimedBy === reader.peerId,
              10_000,
              POLL_MS
            )
            claimed.push(performance.now() - at)
          } catch {
            missing++
          }
        })
      )
      await new Promise(resolve => setTimeout(resolve, CHANGE_GAP_MS))
    }
    return {
      mode: `${members} processes`,
      members,
      sites: siteCount(members),
      links,
      startSeconds,
      meshSeconds,
      rssMbPerNode: rss.reduce((a, b) => a + b, 0) / members,
      cpuIdlePercentPerNode: cpuPercent.reduce((a, b) => a + b, 0) / members,
      idleBytesPerMinute: perMinute,
      idleBytesPerLinkMinute: perMinute.reduce((a, b) => a + b, 0) / 2 / Math.max(1, links),
      published: [],
      claimed,
      missing,
      note:
        `claims only (polled every ${POLL_MS} ms over HTTP, so up to that much later than they arrived); ` +
        `RSS per node: min ${Math.min(...rss).toFixed(0)}, max ${Math.max(...rss).toFixed(0)} MB`
    }
  } finally {
    await Promise.all(
      nodes.map(async node => {
        await node.stop()
      })
    )
    await fs.rm(root, { recursive: true, force: true })
  }
}

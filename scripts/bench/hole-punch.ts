/**
 * Hole-punch benchmark (issue 18), real NATs in network namespaces (scripts/lib/netns.ts; needs root and nft):
 * the same study from a site to a reader three ways, node processes in their namespaces.
 *
 * - direct: the site has a public address on the WAN, the reader is behind a NAT and dials it (TCP);
 * - relayed: both behind their own NAT, every byte through a relay member on the WAN (TCP, both legs);
 * - hole-punched: the same two NATs, all three nodes with `--webrtc`: the relayed link is replaced by a WebRTC
 *   one (UDP, hole punched; the relay answers STUN) before the study moves.
 *
 * Per way: seconds from the reader's fetch to the study complete (every chunk verified), MB/s, peak RSS at
 * both ends, and the CPU seconds the site, the reader and the relay spent over the transfer. The NATs are
 * Linux masquerade on veth links with no added latency: the figures are each design's CPU and memory, not a
 * WAN's.
 *
 *   npm run bench -- hole-punch [--slices 100] [--rounds 1]
 */
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import type { ConnectedMember } from '../../protocol/api/peers.ts'
import { generateCt } from '../generate-ct.ts'
import { createScratchConsortium } from '../lib/consortium.ts'
import { runTool } from '../lib/dcmtk.ts'
import {
  buildNatTopology,
  type NamespacedNode,
  type Namespaces,
  netnsUnavailable,
  startBehindNats,
  startInNamespace
} from '../lib/netns.ts'
import { tempDir } from '../lib/temp.ts'
import { waitFor } from '../lib/wait.ts'
import { type Contender, peakRss, type Run, runRounds } from './common.ts'
import { cpuSecondsOf, say, table } from './scale-common.ts'
import { fetchStudy, unexpected } from './transfer-verify.ts'

const { values } = parseArgs({
  options: {
    slices: { type: 'string', default: '100' },
    rounds: { type: 'string', default: '1' }
  }
})
const slices = Number(values.slices)
const rounds = Number(values.rounds)
const unavailable = netnsUnavailable()
if (unavailable !== undefined) {
  process.stderr.write(`hole-punch benchmark: network namespaces unavailable (${unavailable}); run it as root\n`)
  process.exit(1)
}
/** A WAN outside the private ranges: libp2p dials no private address for a direct upgrade. */
const WAN = '11.98.0'
const CONNECT_TIMEOUT_MS = 60_000

say(`hole-punch benchmark: ${slices} slices 512x512 CT from a site to a reader: direct, relayed, hole-punched`)
say(`${new Date().toISOString()}; NATs in network namespaces, veth links, no added latency`)
const work = await tempDir('radmesh-bench-')
const studyDir = join(work, 'study')
const study = await generateCt({ out: studyDir, slices, rows: 512, columns: 512, seed: 5 })
say(`study: ${study.files.length} files, ${(study.bytes / 1e6).toFixed(1)} MB`)
const consortium = await createScratchConsortium('Hole Punch Bench')

interface Costs {
  site: number
  reader: number
  relay?: number
  link: string
}
const costs = new Map<string, Costs>()
const ends = new Map<string, { site: number; reader: number }>()

const linkOf = async (from: NamespacedNode, to: NamespacedNode): Promise<ConnectedMember | undefined> => {
  const { status, body } = await from.api<ConnectedMember[]>('GET', '/api/peers')
  if (status !== 200) throw unexpected('GET /api/peers', status, body)
  return body.find(p => p.peerId === to.peerId)
}
const describe = (link: ConnectedMember | undefined): string =>
  link === undefined ? 'none' : `${link.link}${link.transport === undefined ? '' : ` (${link.transport})`}`

/**
 * The site takes the study by storescu (on its management address), shares it with the reader, which fetches
 * it; `expected` is the link the reader must have to the site before and after.
 */
async function transfer(
  way: string,
  nodes: { site: NamespacedNode; reader: NamespacedNode; relay?: NamespacedNode; siteMgmt: string },
  expected: (link: ConnectedMember | undefined) => boolean
): Promise<Run> {
  const { site, reader, relay, siteMgmt } = nodes
  await waitFor(
    `the reader's link to the site to be as the ${way} way wants`,
    async () => expected(await linkOf(reader, site)),
    CONNECT_TIMEOUT_MS
  )
  const pushed = await runTool('storescu', [
    '-aec',
    'RADMESH',
    '-aet',
    'BENCH',
    '+sd',
    '+r',
    siteMgmt,
    '11112',
    studyDir
  ])
  if (pushed.code !== 0) throw new Error(`storescu to the site failed: ${pushed.stderr.slice(0, 300)}`)
  const shared = await site.api('POST', `/api/studies/${study.studyInstanceUid}/share`, { peerIds: [reader.peerId] })
  if (shared.status !== 200) throw unexpected('POST share on the site', shared.status, shared.body)
  const before = await Promise.all([site, reader, relay].map(n => cpuSecondsOf(n?.pid)))
  const seconds = await fetchStudy(reader, study.studyInstanceUid)
  const after = await Promise.all([site, reader, relay].map(n => cpuSecondsOf(n?.pid)))
  const link = await linkOf(reader, site)
  if (!expected(link)) throw new Error(`the ${way} way's link is ${describe(link)} at its end`)
  const spent = (i: number): number => (after[i] ?? 0) - (before[i] ?? 0)
  costs.set(way, {
    site: spent(0),
    reader: spent(1),
    ...(relay === undefined ? {} : { relay: spent(2) }),
    link: describe(link)
  })
  const [siteRss, readerRss] = [await peakRss(site.pid), await peakRss(reader.pid)]
  ends.set(way, { site: siteRss, reader: readerRss })
  return { seconds, rssMb: Math.max(siteRss, readerRss) }
}

/** Runs `body` with a fresh topology and the nodes it starts, all torn down after. */
async function inTopology(body: (net: Namespaces, started: NamespacedNode[]) => Promise<Run>): Promise<Run> {
  const net = buildNatTopology({ wan: WAN })
  const started: NamespacedNode[] = []
  try {
    return await body(net, started)
  } finally {
    await Promise.all(started.map(async node => await node.kill()))
    net.teardown()
  }
}

const SITE_ARGS = ['--dicom', '11112', '--stable-after', '1s']

async function direct(): Promise<Run> {
  return await inTopology(async (net, started) => {
    const pub = net.addWanHost('pub', `${WAN}.9`)
    const site = await startInNamespace(pub.ns, pub.mgmt, await consortium.member('Public Site', 'site'), [
      '--listen',
      `/ip4/${WAN}.9/tcp/7400`,
      ...SITE_ARGS
    ])
    started.push(site)
    const reader = await startInNamespace(
      net.ns.reader,
      net.mgmt.reader,
      await consortium.member('Reader', 'radiologist'),
      ['--listen', `/ip4/${net.addr.reader}/tcp/7400`, '--peer', `/ip4/${WAN}.9/tcp/7400/p2p/${site.peerId}`]
    )
    started.push(reader)
    return await transfer('direct', { site, reader, siteMgmt: pub.mgmt }, l => l?.link === 'direct')
  })
}

/** A relay on the WAN, the site behind NAT A with a reservation on it, the reader behind NAT B dialling it there. */
async function behindTwoNats(way: string, webrtc: boolean): Promise<Run> {
  return await inTopology(async (net, started) => {
    const flag = webrtc ? ['--webrtc'] : []
    const { relay, site, reader } = await startBehindNats(
      net,
      {
        relay: await consortium.member('Relay', 'site'),
        site: await consortium.member('NAT Site', 'site'),
        reader: await consortium.member('Reader', 'radiologist')
      },
      {
        args: { relay: flag, site: [...SITE_ARGS, ...flag], reader: flag },
        timeoutMs: CONNECT_TIMEOUT_MS,
        started: node => started.push(node)
      }
    )
    const wanted = webrtc
      ? (l: ConnectedMember | undefined) => l?.transport === 'webrtc' && l.addrs.every(a => a.includes('/webrtc'))
      : (l: ConnectedMember | undefined) => l?.link === 'relayed'
    return await transfer(way, { site, reader, relay, siteMgmt: net.mgmt.site }, wanted)
  })
}

const ways: Contender[] = [
  { name: 'direct', run: direct },
  { name: 'relayed', run: async () => await behindTwoNats('relayed', false) },
  { name: 'hole-punched', run: async () => await behindTwoNats('hole-punched', true) }
]
const rows = await runRounds(ways, rounds)
const mb = study.bytes / 1e6
const relayedRow = rows.find(r => r?.name === 'relayed')
table(
  ['way', 'link', 'seconds (min-max)', 'MB/s', 'peak RSS site / reader', 'CPU s site / reader / relay', 'vs relayed'],
  rows.flatMap(row => {
    if (row === undefined) return []
    const ok = row.runs > 0
    const cost = costs.get(row.name)
    const rss = ends.get(row.name)
    return [
      [
        row.name,
        cost?.link ?? '-',
        ok ? `${row.seconds.toFixed(2)} (${row.min.toFixed(2)}-${row.max.toFixed(2)})` : 'no successful run',
        ok ? (mb / row.seconds).toFixed(0) : '-',
        rss === undefined ? '-' : `${rss.site.toFixed(0)} / ${rss.reader.toFixed(0)} MB`,
        cost === undefined
          ? '-'
          : [cost.site, cost.reader].map(s => s.toFixed(2)).join(' / ') +
            (cost.relay === undefined ? ' / -' : ` / ${cost.relay.toFixed(2)}`),
        ok && relayedRow !== undefined && relayedRow.runs > 0
          ? `${(row.seconds / relayedRow.seconds).toFixed(2)}x`
          : '-'
      ]
    ]
  })
)
say("(CPU seconds over the fetch, the last run; vs relayed = this way's time / the relayed way's: below 1 is faster)")

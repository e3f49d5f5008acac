/**
 * Relay benchmark (issue 18), node processes on loopback:
 *
 * 1. The same study direct and relayed. Direct: a reader dials the site. Relayed: the site holds a reservation
 *    on a member relay (`--relay`) and announces only an address no one can reach, as behind a NAT, and so
 *    does the reader, which knows the site only by its relayed address: every byte goes through the relay.
 *    Per way: seconds from the reader's fetch to the study complete (verified afterwards), peak RSS at both
 *    ends; for the relayed way, the relay's CPU seconds, bytes and RSS growth over the transfer.
 * 2. Readers behind NAT holding reservations on one relay: `--readers` nodes started with `--relay-via` and an
 *    unreachable announced address. Once every reader holds its reservation: the relay's RSS against before,
 *    per reservation, then an idle window (`--idle-seconds`) of the relay's libp2p bytes and CPU time.
 *
 * Hole-punched transfers need two NATs, which only network namespaces give (test/e2e/relay-nat.test.ts).
 *
 *   npm run bench -- relay [--slices 100] [--rounds 1] [--readers 20] [--idle-seconds 60]
 */
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import type { ConnectedMember } from '../../protocol/api/peers.ts'
import { type GeneratedStudy, generateCt } from '../generate-ct.ts'
import { createScratchConsortium, type ScratchConsortium } from '../lib/consortium.ts'
import { p2pAddr, type StartedNode, startNode } from '../lib/node-process.ts'
import { tempDir } from '../lib/temp.ts'
import { waitFor } from '../lib/wait.ts'
import { type Contender, peakRss, type Run, runRounds, timeStorescu } from './common.ts'
import { cpuSecondsOf, kb, type ProbedNode, rssOf, say, startProbed, table } from './scale-common.ts'
import { fetchStudy, unexpected, verify } from './transfer-verify.ts'

const { values } = parseArgs({
  options: {
    slices: { type: 'string', default: '100' },
    rounds: { type: 'string', default: '1' },
    readers: { type: 'string', default: '20' },
    'idle-seconds': { type: 'string', default: '60' }
  }
})
const slices = Number(values.slices)
const rounds = Number(values.rounds)
const readerCount = Number(values.readers)
const idleSeconds = Number(values['idle-seconds'])
/** TEST-NET-1 (RFC 5737): an address no one can reach, announced by a member "behind a NAT" */
const unreachable = (n: number): string[] => ['--announce', `/ip4/192.0.2.${1 + (n % 250)}/tcp/9`]
/** how long a member may take to connect or to get its reservation on a loaded machine */
const CONNECT_TIMEOUT_MS = 60_000

const peers = async (node: StartedNode): Promise<ConnectedMember[]> => {
  const { status, body } = await node.api<ConnectedMember[]>('GET', '/api/peers')
  if (status !== 200) throw unexpected('GET /api/peers', status, body)
  return body
}
const linkTo = async (from: StartedNode, to: StartedNode): Promise<ConnectedMember | undefined> =>
  (await peers(from)).find(p => p.peerId === to.peerId)

say(`relay benchmark: ${slices} slices 512x512 CT, direct and through a member relay; ${readerCount} readers`)
say(
  `machine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, ` +
    `node ${process.version}, ${new Date().toISOString()}`
)
const work = await tempDir('radmesh-bench-')
const studyDir = join(work, 'study')
const study = await generateCt({ out: studyDir, slices, rows: 512, columns: 512, seed: 3 })
say(`study: ${study.files.length} files, ${(study.bytes / 1e6).toFixed(1)} MB`)
const consortium = await createScratchConsortium('Relay Bench')

/** The relayed way's costs at the relay, the last run. */
let relayCost: { cpuSeconds: number; bytes: number; rssGrowthMb: number; peakMb: number } | undefined
const endsRss = new Map<string, { site: number; reader: number }>()

/** The site takes the study by storescu, shares it with the reader, which fetches it; the run's figures. */
async function transfer(way: string, site: StartedNode, reader: StartedNode, s: GeneratedStudy): Promise<Run> {
  await timeStorescu(site.dicomPort, 'RADMESH', studyDir)
  await waitFor(
    'the site to know the reader',
    async () => (await linkTo(site, reader)) !== undefined,
    CONNECT_TIMEOUT_MS
  )
  const shared = await site.api('POST', `/api/studies/${s.studyInstanceUid}/share`, { peerIds: [reader.peerId] })
  if (shared.status !== 200) throw unexpected('POST share on the site', shared.status, shared.body)
  const seconds = await fetchStudy(reader, s.studyInstanceUid)
  await verify(s, site, reader)
  const [siteRss, readerRss] = [await peakRss(site.process.pid), await peakRss(reader.process.pid)]
  const seen = endsRss.get(way) ?? { site: 0, reader: 0 }
  endsRss.set(way, { site: Math.max(seen.site, siteRss), reader: Math.max(seen.reader, readerRss) })
  return { seconds, rssMb: Math.max(siteRss, readerRss) }
}

async function direct(): Promise<Run> {
  const site = await startNode(await consortium.member('Direct Site', 'site'), { dicom: true, preallocateMib: null })
  const reader = await startNode(await consortium.member('Direct Reader', 'radiologist'), {
    peers: [p2pAddr(site)],
    preallocateMib: null
  })
  try {
    const run = await transfer('direct', site, reader, study)
    const link = await linkTo(reader, site)
    if (link?.link !== 'direct') throw new Error(`the direct way's link is ${link?.link ?? 'gone'}`)
    return run
  } finally {
    await Promise.all([site.stop(), reader.stop()])
  }
}

async function relayed(): Promise<Run> {
  const relay = await startProbed(await consortium.member('Bench Relay', 'site'), { extraArgs: ['--relay'] })
  const started: StartedNode[] = [relay]
  try {
    const site = await startNode(await consortium.member('Relayed Site', 'site'), {
      dicom: true,
      preallocateMib: null,
      extraArgs: ['--relay-via', p2pAddr(relay), ...unreachable(1)]
    })
    started.push(site)
    await waitFor(
      'the site to hold a reservation on the relay',
      async () => (await linkTo(relay, site)) !== undefined,
      CONNECT_TIMEOUT_MS
    )
    const reader = await startNode(await consortium.member('Relayed Reader', 'radiologist'), {
      peers: [`${p2pAddr(relay)}/p2p-circuit/p2p/${site.peerId}`],
      preallocateMib: null,
      extraArgs: unreachable(2)
    })
    started.push(reader)
    await waitFor('the reader to reach the site', async () => (await linkTo(reader, site)) !== undefined, 60_000)
    const before = { sample: await relay.sample(), cpu: await cpuSecondsOf(relay.process.pid) }
    const run = await transfer('relayed', site, reader, study)
    const after = { sample: await relay.sample(), cpu: await cpuSecondsOf(relay.process.pid) }
    const link = await linkTo(reader, site)
    if (link?.link !== 'relayed') throw new Error(`the relayed way's link is ${link?.link ?? 'gone'} at its end`)
    relayCost = {
      cpuSeconds: after.cpu - before.cpu,
      bytes: after.sample.sent + after.sample.received - before.sample.sent - before.sample.received,
      rssGrowthMb: (after.sample.memory.rss - before.sample.memory.rss) / 2 ** 20,
      peakMb: (await rssOf(relay.process.pid)).peak
    }
    return run
  } finally {
    await Promise.all(started.map(async node => await node.stop()))
  }
}

say('\n1. the same study, direct and through a relay')
const ways: Contender[] = [
  { name: 'direct', run: direct },
  { name: 'relayed', run: relayed }
]
const [directRow, relayedRow] = await runRounds(ways, rounds)
const mb = study.bytes / 1e6
table(
  ['way', 'seconds (min-max)', 'MB/s', 'peak RSS site / reader', 'relayed / direct'],
  [directRow, relayedRow].flatMap(row => {
    if (row === undefined) return []
    const rss = endsRss.get(row.name)
    const ok = row.runs > 0
    return [
      [
        row.name,
        ok ? `${row.seconds.toFixed(2)} (${row.min.toFixed(2)}-${row.max.toFixed(2)})` : 'no successful run',
        ok ? (mb / row.seconds).toFixed(0) : '-',
        rss === undefined ? '-' : `${rss.site.toFixed(0)} / ${rss.reader.toFixed(0)} MB`,
        ok && directRow !== undefined && directRow.runs > 0 ? `${(row.seconds / directRow.seconds).toFixed(2)}x` : '-'
      ]
    ]
  })
)
if (relayCost !== undefined) {
  say(
    `at the relay, the last relayed transfer: ${relayCost.cpuSeconds.toFixed(2)} CPU seconds, ` +
      `${kb(relayCost.bytes)} through its libp2p sockets (both ways; ${(relayCost.bytes / study.bytes).toFixed(2)}x ` +
      `the study), RSS +${relayCost.rssGrowthMb.toFixed(0)} MB, peak ${relayCost.peakMb.toFixed(0)} MB`
  )
}

say(`\n2. ${readerCount} readers behind NAT holding reservations on one relay`)
async function reservations(members: ScratchConsortium): Promise<void> {
  const relay: ProbedNode = await startProbed(await members.member('Idle Relay', 'site'), { extraArgs: ['--relay'] })
  const readers: StartedNode[] = []
  try {
    await new Promise(resolve => setTimeout(resolve, 5_000))
    const alone = {
      rss: (await rssOf(relay.process.pid)).rss,
      heapMb: (await relay.sample()).memory.heapUsed / 2 ** 20
    }
    const homes = await Promise.all(
      Array.from({ length: readerCount }, async (_, i) => await members.member(`Home Reader ${i + 1}`, 'radiologist'))
    )
    const begun = performance.now()
    // A few at a time: twenty starts at once on two cores would time each other out.
    for (let i = 0; i < homes.length; i += 4) {
      readers.push(
        ...(await Promise.all(
          homes
            .slice(i, i + 4)
            .map(
              async (home, j) =>
                await startNode(home, { extraArgs: ['--relay-via', p2pAddr(relay), ...unreachable(10 + i + j)] })
            )
        ))
      )
    }
    await waitFor(
      `all ${readerCount} readers to hold a reservation`,
      async () => {
        const listed = new Set((await peers(relay)).map(p => p.peerId))
        return readers.every(reader => listed.has(reader.peerId))
      },
      CONNECT_TIMEOUT_MS * 2
    )
    const reservedSeconds = (performance.now() - begun) / 1000
    // The members then find each other (through the relay: none can be dialled) and exchange their first state.
    await new Promise(resolve => setTimeout(resolve, 20_000))
    const first = { sample: await relay.sample(), cpu: await cpuSecondsOf(relay.process.pid) }
    await new Promise(resolve => setTimeout(resolve, idleSeconds * 1000))
    const last = { sample: await relay.sample(), cpu: await cpuSecondsOf(relay.process.pid) }
    const rss = await rssOf(relay.process.pid)
    const relayedLinks = (await Promise.all(readers.map(async reader => await peers(reader))))
      .flat()
      .filter(p => p.link === 'relayed').length
    const idleBytes = last.sample.sent + last.sample.received - first.sample.sent - first.sample.received
    const perMinute = (idleBytes / idleSeconds) * 60
    table(
      ['at the relay', 'value'],
      [
        [
          'readers holding a reservation',
          `${readerCount} (all, ${reservedSeconds.toFixed(1)} s after the first start)`
        ],
        ['links between readers through the relay (counted at both ends)', String(relayedLinks)],
        ['RSS alone / with the readers', `${alone.rss.toFixed(0)} / ${rss.rss.toFixed(0)} MB`],
        ['RSS per reader', `${((rss.rss - alone.rss) / readerCount).toFixed(1)} MB`],
        [
          'V8 heap used alone / with the readers',
          `${alone.heapMb.toFixed(0)} / ${(last.sample.memory.heapUsed / 2 ** 20).toFixed(0)} MB`
        ],
        [`idle traffic over ${idleSeconds} s (libp2p sockets, both ways)`, `${kb(perMinute)}/min`],
        ['idle traffic per reader', `${kb(perMinute / readerCount)}/min`],
        ['idle CPU', `${(((last.cpu - first.cpu) / idleSeconds) * 100).toFixed(1)} % of one core`],
        ['libp2p sockets open', String(last.sample.sockets)]
      ]
    )
  } finally {
    await Promise.all([relay, ...readers].map(async node => await node.stop()))
  }
}
await reservations(await createScratchConsortium('Relay Bench Readers'))

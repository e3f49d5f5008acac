/**
 * Part 1 of the scale benchmark, a year of cases: a site holding N closed cases and OPEN open ones, made by
 * radmesh's own record, document and index code (scripts/lib/worklist-history.ts), each case read by two
 * radiologists. For each N: the site's start (spawn to ready), its RSS, `/api/worklist` latency and size, and
 * a new reader's cold sync of the open worklist through a byte-counting proxy (time and bytes both ways).
 * Generated HOMEs are cached under CACHE: later runs copy them (the generation time is printed when made).
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { writeWorklistHistory } from '../lib/worklist-history.ts'
import { createScratchConsortium } from '../lib/consortium.ts'
import { startFaultProxy } from '../lib/fault-proxy.ts'
import { startNode } from '../lib/node-process.ts'
import { tempDir } from '../lib/temp.ts'
import { waitFor } from '../lib/wait.ts'
import type { ProbeSample } from './scale-probe.ts'
import {
  CACHE,
  copyDir,
  isDir,
  kb,
  percentile,
  type ProbedNode,
  rssOf,
  say,
  startProbed,
  table
} from './scale-common.ts'

/** Open cases at every size: a busy site's open worklist. */
export const OPEN = 1_000
/** `/api/worklist` requests timed at each size (after WARMUP untimed ones). */
const REQUESTS = 200
const WARMUP = 10
/**
 * The site's RSS is read again after this long idle: V8 gives back the heap a load grew (its memory reducer runs
 * some seconds after the last allocations; 268 MB became 211 MB within 10 s, docs/PERFORMANCE.md, Scale).
 */
const IDLE_MS = 15_000
const GOALS = { startSeconds: 3, rssMb: 300, worklistP99Ms: 50, coldSyncSeconds: 2, coldSyncBytes: 10e6 }
/** The figures before issue 14 (one worklist document; cases counted in all, not closed + open). */
const BEFORE: Record<number, { start: string; rss: string; p50: string; size: string; sync: string }> = {
  1000: { start: '2.4 s', rss: '240 MB', p50: '16 ms', size: '711 KB', sync: '3.0 s / 1.2 MB' },
  10000: { start: '8.3 s', rss: '401 MB', p50: '96 ms', size: '7.1 MB', sync: 'never' },
  50000: { start: '49 s', rss: '977 MB', p50: '717 ms', size: '35.5 MB', sync: 'never' }
}

interface Homes {
  root: string
  site: string
  earlier: string
  reader: string
  generationSeconds: number | undefined
}
interface Row {
  closed: number
  generationSeconds: number | undefined
  startSeconds: number
  /** VmRSS once started, and once the worklist was asked and a reader synced */
  startRssMb: number
  rssMb: number
  /** VmRSS after IDLE_MS more with nothing to do */
  idleRssMb: number
  peakMb: number
  p50: number
  p99: number
  bytes: number
  syncSeconds: number
  syncFromSpawnSeconds: number
  syncBytes: number
  heap: string
}

/** HOMEs of a site with `closed` + OPEN cases: from the cache, or made (and cached) now. */
async function homesFor(closed: number, useCache: boolean): Promise<Homes> {
  const cached = join(CACHE, `history-${closed}-${OPEN}`)
  const root = await tempDir('radmesh-scale-history-')
  if (useCache && (await isDir(cached))) {
    await copyDir(cached, join(root, 'c'))
    const home = (n: number): string => join(root, 'c', `member-${n}`)
    return { root, site: home(1), earlier: home(2), reader: home(3), generationSeconds: undefined }
  }
  const consortium = await createScratchConsortium('A Year of Cases')
  const site = await consortium.member('Busy Hospital', 'site')
  const earlier = await consortium.member('Dr Year Reader', 'radiologist')
  const reader = await consortium.member('Dr New Reader', 'radiologist')
  // Each node once, so that its HOME is whole (database, keys), then stopped.
  for (const home of [site, earlier, reader]) await (await startNode(home)).stop()
  const begun = performance.now()
  const count = closed + OPEN
  await writeWorklistHistory({
    site,
    readers: [earlier, reader],
    count,
    openFraction: OPEN / count,
    progress: done => {
      if (done % 10_000 === 0 && process.stdout.isTTY) process.stdout.write(`  generated ${done} of ${count} cases\r`)
    }
  })
  const generationSeconds = (performance.now() - begun) / 1000
  say(`  generated ${count} cases in ${generationSeconds.toFixed(0)} s (signed records, case documents, index)`)
  if (useCache) {
    await fs.rm(cached, { recursive: true, force: true })
    await copyDir(consortium.root, cached)
  }
  return { root: consortium.root, site, earlier, reader, generationSeconds }
}

const mb = (bytes: number): string => (bytes / 2 ** 20).toFixed(0)

/** Where a node's memory is: its JS heap by space, what V8 holds outside it, and the process's mappings. */
async function memoryOf(node: ProbedNode, probe: ProbeSample): Promise<string> {
  const spaces = probe.heapSpaces
    .filter(s => s.usedMb >= 1)
    .map(s => `${s.name.replace(/_space$/, '')} ${s.usedMb.toFixed(0)}`)
  const rollup = await fs.readFile(`/proc/${node.process.pid}/smaps_rollup`, 'utf8').catch(() => '')
  const field = (name: string): string =>
    (Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(rollup)?.[1] ?? 0) / 1024).toFixed(0)
  return (
    `heap used ${mb(probe.memory.heapUsed)} of ${mb(probe.memory.heapTotal)} MB (${spaces.join(', ')}), ` +
    `external ${mb(probe.memory.external)} MB (array buffers ${mb(probe.memory.arrayBuffers)}); ` +
    `anonymous ${field('Anonymous')} MB, file-backed shared ${field('Shared_Clean')} MB ` +
    '(the node binary, shared by every node process)'
  )
}

async function worklistTimes(site: ProbedNode): Promise<{ p50: number; p99: number; bytes: number }> {
  const times: number[] = []
  let bytes = 0
  for (let i = 0; i < WARMUP + REQUESTS; i++) {
    const begun = performance.now()
    const response = await site.fetch('/api/worklist')
    const body = await response.arrayBuffer()
    if (i >= WARMUP) times.push(performance.now() - begun)
    bytes = body.byteLength
    if (response.status !== 200) throw new Error(`/api/worklist answered ${response.status}`)
  }
  return { p50: percentile(times, 50), p99: percentile(times, 99), bytes }
}

async function openOn(node: { api: ProbedNode['api'] }): Promise<number> {
  const { status, body } = await node.api<Array<{ status: string }>>('GET', '/api/worklist?closed=0')
  if (status !== 200 || !Array.isArray(body)) {
    throw new Error(`/api/worklist?closed=0 answered ${status}: ${JSON.stringify(body).slice(0, 300)}`)
  }
  return body.filter(c => c.status === 'SCHEDULED').length
}

async function measure(closed: number, useCache: boolean, baseline: boolean): Promise<Row> {
  say(`${closed} closed + ${OPEN} open cases:`)
  const homes = await homesFor(closed, useCache)
  if (baseline) {
    // A node holding no case (a radiologist alone): what every node costs before its worklist.
    const empty = await startProbed(homes.earlier)
    await new Promise(resolve => setTimeout(resolve, 2_000))
    const memory = await memoryOf(empty, await empty.sample())
    const rss = (await rssOf(empty.process.pid)).rss
    say(`  a node with no case: start ${empty.startSeconds.toFixed(2)} s, RSS ${rss.toFixed(0)} MB: ${memory}`)
    await empty.stop()
  }
  const site = await startProbed(homes.site)
  try {
    const started = await rssOf(site.process.pid)
    const listed = await openOn(site)
    if (listed !== OPEN) throw new Error(`the site lists ${listed} open cases, not ${OPEN}`)
    const worklist = await worklistTimes(site)

    const proxy = await startFaultProxy({ target: { host: '127.0.0.1', port: site.p2pPort } })
    const spawned = performance.now()
    const reader = await startNode(homes.reader, { peers: [`/ip4/127.0.0.1/tcp/${proxy.port}/p2p/${site.peerId}`] })
    const ready = performance.now()
    try {
      await waitFor('the new reader to list every open case', async () => (await openOn(reader)) === OPEN, 60_000, 50)
    } finally {
      await reader.stop()
    }
    const done = performance.now()
    const syncBytes = proxy.bytesToTarget + proxy.bytesFromTarget
    await proxy.close()
    const after = await rssOf(site.process.pid)
    const probe = await site.sample()
    const heap = await memoryOf(site, probe)
    say(
      `  site after start ${started.rss.toFixed(0)} MB, ` +
        `after the worklist and the reader ${after.rss.toFixed(0)} MB ` +
        `(peak ${after.peak.toFixed(0)}): ${heap}`
    )
    await new Promise(resolve => setTimeout(resolve, IDLE_MS))
    const idle = await rssOf(site.process.pid)
    const idleHeap = await memoryOf(site, await site.sample())
    say(`  site ${IDLE_MS / 1000} s later, idle: ${idle.rss.toFixed(0)} MB: ${idleHeap}`)
    return {
      closed,
      generationSeconds: homes.generationSeconds,
      startSeconds: site.startSeconds,
      startRssMb: started.rss,
      rssMb: after.rss,
      idleRssMb: idle.rss,
      peakMb: after.peak,
      ...worklist,
      syncSeconds: (done - ready) / 1000,
      syncFromSpawnSeconds: (done - spawned) / 1000,
      syncBytes,
      heap
    }
  } finally {
    await site.stop()
    await fs.rm(homes.root, { recursive: true, force: true })
  }
}

export async function historyPart(closedSizes: number[], useCache: boolean): Promise<void> {
  say(`== part 1: a year of cases (site: N closed cases + ${OPEN} open, two radiologists; real node processes) ==`)
  const rows: Row[] = []
  for (const closed of closedSizes) rows.push(await measure(closed, useCache, rows.length === 0))
  say()
  say('growth curve (start: spawn to ready; RSS: VmRSS once started, after the worklist runs and the reader')
  say(`synced, and ${IDLE_MS / 1000} s later, idle; peak VmHWM;`)
  say(`worklist: ${REQUESTS} sequential GET /api/worklist, open cases + 50 closed; cold sync: a new reader's start`)
  say('until it lists every open case, timed from its ready line (and from its spawn), bytes both ways on its link)')
  const header = [
    'closed + open',
    'start',
    'RSS started / loaded / idle (peak)',
    'worklist p50 / p99',
    'response',
    'cold sync (from spawn)',
    'sync bytes'
  ]
  table(
    header,
    rows.map(r => [
      `${r.closed} + ${OPEN}`,
      `${r.startSeconds.toFixed(2)} s`,
      `${r.startRssMb.toFixed(0)} / ${r.rssMb.toFixed(0)} / ${r.idleRssMb.toFixed(0)} (${r.peakMb.toFixed(0)}) MB`,
      `${r.p50.toFixed(1)} / ${r.p99.toFixed(1)} ms`,
      kb(r.bytes),
      `${r.syncSeconds.toFixed(2)} s (${r.syncFromSpawnSeconds.toFixed(2)} s)`,
      kb(r.syncBytes)
    ])
  )
  say()
  say('against the goals of issue 14 and the figures before it (before: all cases in one document, N cases in all)')
  const verdict = (ok: boolean): string => (ok ? 'met' : 'MISSED')
  for (const r of rows) {
    const before = BEFORE[r.closed] ?? BEFORE[r.closed + OPEN]
    say(`${r.closed} + ${OPEN}:`)
    table(
      ['', 'goal', 'before', 'now', ''],
      [
        [
          'start',
          `< ${GOALS.startSeconds} s`,
          before?.start ?? '-',
          `${r.startSeconds.toFixed(2)} s`,
          verdict(r.startSeconds < GOALS.startSeconds)
        ],
        [
          'RSS started',
          `< ${GOALS.rssMb} MB`,
          before?.rss ?? '-',
          `${r.startRssMb.toFixed(0)} MB`,
          verdict(r.startRssMb < GOALS.rssMb)
        ],
        ['RSS loaded', `< ${GOALS.rssMb} MB`, '-', `${r.rssMb.toFixed(0)} MB`, verdict(r.rssMb < GOALS.rssMb)],
        [
          `RSS ${IDLE_MS / 1000} s idle`,
          `< ${GOALS.rssMb} MB`,
          '-',
          `${r.idleRssMb.toFixed(0)} MB`,
          verdict(r.idleRssMb < GOALS.rssMb)
        ],
        ['worklist p50', '-', before?.p50 ?? '-', `${r.p50.toFixed(1)} ms`, ''],
        [
          'worklist p99',
          `< ${GOALS.worklistP99Ms} ms`,
          '-',
          `${r.p99.toFixed(1)} ms`,
          verdict(r.p99 < GOALS.worklistP99Ms)
        ],
        ['worklist size', '-', before?.size ?? '-', kb(r.bytes), ''],
        [
          'cold sync',
          `< ${GOALS.coldSyncSeconds} s, < 10 MB`,
          before?.sync ?? '-',
          `${r.syncSeconds.toFixed(2)} s / ${kb(r.syncBytes)}`,
          verdict(r.syncSeconds < GOALS.coldSyncSeconds && r.syncBytes < GOALS.coldSyncBytes)
        ]
      ]
    )
    if (r.generationSeconds !== undefined) say(`  (history generated in ${r.generationSeconds.toFixed(0)} s)`)
  }
  say()
}

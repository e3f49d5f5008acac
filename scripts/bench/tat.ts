/**
 * STAT turnaround benchmark (issue 16): a head CT routed STAT, pushed by DCMTK storescu to the site at scanner
 * pace (`--rate` slices a second, one association each), the on-duty reader behind a `--mbit` link (the
 * userland rate-limiting proxy, scripts/lib/fault-proxy.ts, both ways). Two ways in one run:
 *
 * - radmesh: the site publishes the case at the first instance and streams the study to the reader as it
 *   arrives (node/workflow/streaming.ts); the reader prefetches it as a STAT case on duty.
 * - store-and-forward: a DCMTK storescp receives the whole study, then storescu forwards it through the same
 *   kind of link to the reader's storescp (TCP_NODELAY=1 everywhere), as a router that waits for the study
 *   to be complete does.
 *
 * Measured for each: from the last C-STORE answered at the site to every image local at the reader, and from
 * the first C-STORE answered to the first image at the reader; peak RSS (VmHWM) at both ends.
 *
 *   npm run bench -- tat [--slices 200] [--rate 10] [--mbit 20] [--rounds 1]
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { promises as fs } from 'node:fs'
import { cpus, loadavg, totalmem } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import type { Availability } from '../../protocol/api/studies.ts'
import { generateCt } from '../generate-ct.ts'
import { createScratchConsortium } from '../lib/consortium.ts'
import { runTool } from '../lib/dcmtk.ts'
import { startFaultProxy } from '../lib/fault-proxy.ts'
import { connected, knowsRadiologists, logOf, startNode } from '../lib/node-process.ts'
import { pushPaced } from '../lib/paced-push.ts'
import { freePort } from '../lib/ports.ts'
import { tempDir } from '../lib/temp.ts'
import { waitFor } from '../lib/wait.ts'
import { peakRss } from './common.ts'

const { values } = parseArgs({
  options: {
    slices: { type: 'string', default: '200' },
    rate: { type: 'string', default: '10' },
    mbit: { type: 'string', default: '20' },
    rounds: { type: 'string', default: '1' }
  }
})
const slices = Number(values.slices)
const rate = Number(values.rate)
const mbit = Number(values.mbit)
const rounds = Number(values.rounds)
/** how often the reader is looked at while the study arrives */
const POLL_MS = 20

interface Turnaround {
  /** last C-STORE answered at the site -> every image at the reader, s */
  afterLast: number
  /** first C-STORE answered at the site -> first image at the reader, ms */
  firstImageMs: number
  /** the push's own length, first to last C-STORE answered, s */
  pushSeconds: number
  rss: { site: number; reader: number }
  note: string
}

const work = await tempDir('radmesh-bench-')
process.stdout.write(
  `STAT turnaround benchmark: ${slices} slices 512x512 16-bit head CT at ${rate} slices/s by storescu, ` +
    `the reader behind a ${mbit} Mbit/s link (userland proxy)\n`
)
process.stdout.write(
  `machine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, ` +
    `load ${loadavg()
      .map(n => n.toFixed(1))
      .join(' ')}, node ${process.version}, ${new Date().toISOString()}\n`
)
const studyDir = join(work, 'study')
const study = await generateCt({
  out: studyDir,
  slices,
  rows: 512,
  columns: 512,
  seed: 16,
  studyDescription: 'CT HEAD STROKE PROTOCOL',
  bodyPart: 'HEAD'
})
const studyUid = study.studyInstanceUid
process.stdout.write(`study: ${study.files.length} files, ${(study.bytes / 1e6).toFixed(1)} MB\n\n`)

async function radmeshRun(): Promise<Turnaround> {
  const consortium = await createScratchConsortium('TAT bench')
  const site = await startNode(await consortium.member('Bench Site', 'site'), { dicom: true, preallocateMib: null })
  const proxy = await startFaultProxy({ target: { host: '127.0.0.1', port: site.p2pPort }, bitsPerSecond: mbit * 1e6 })
  // The reader announces a port nobody listens on, so the site cannot dial it around the link.
  const reader = await startNode(
    await consortium.member('Bench Reader', 'radiologist', [], ['--subspecialty', 'neuro']),
    {
      peers: [`/ip4/127.0.0.1/tcp/${proxy.port}/p2p/${site.peerId}`],
      preallocateMib: null,
      extraArgs: ['--announce', `/ip4/127.0.0.1/tcp/${await freePort()}`]
    }
  )
  try {
    await connected(site, reader, 15_000)
    await knowsRadiologists(site, 1, 15_000)
    let firstImageAt: number | undefined
    let allAt: number | undefined
    let polling = true
    const poll = (async () => {
      while (polling) {
        const { status, body } = await reader.api<Availability>('GET', `/api/studies/${studyUid}/availability`)
        if (status === 200) {
          if (firstImageAt === undefined && body.instancesLocal >= 1) firstImageAt = performance.now()
          if (body.instancesTotal === slices && body.instancesLocal === slices) {
            allAt = performance.now()
            return
          }
        }
        await new Promise(resolve => setTimeout(resolve, POLL_MS))
      }
    })()
    const push = await pushPaced(site.dicomPort, 'RADMESH', study.files, rate)
    await waitFor('every image at the reader', () => allAt !== undefined, 600_000, 50).finally(() => {
      polling = false
    })
    await poll
    const first = push.answeredAt[0] as number
    const last = push.answeredAt.at(-1) as number
    const versions = (await logOf(site.home)).filter(
      line => line['event'] === 'study-published' && line['study'] === studyUid
    ).length
    return {
      afterLast: ((allAt as number) - last) / 1000,
      firstImageMs: (firstImageAt as number) - first,
      pushSeconds: (last - first) / 1000,
      rss: { site: await peakRss(site.process.pid), reader: await peakRss(reader.process.pid) },
      note: `${versions} versions announced`
    }
  } finally {
    await Promise.all([site.stop(), reader.stop()])
    await proxy.close()
  }
}

/** A DCMTK storescp writing into `out`, answering echoscu. */
async function storescp(out: string, aeTitle: string): Promise<{ scp: ChildProcess; port: number }> {
  const port = await freePort()
  const scp = spawn('storescp', ['-od', out, '-aet', aeTitle, String(port)], {
    env: { ...process.env, TCP_NODELAY: '1' },
    stdio: 'ignore'
  })
  await waitFor(
    aeTitle,
    async () => (await runTool('echoscu', ['-aec', aeTitle, '127.0.0.1', String(port)])).code === 0,
    10_000,
    100
  )
  return { scp, port }
}

async function storeAndForwardRun(): Promise<Turnaround> {
  const atSite = await fs.mkdtemp(join(work, 'site-'))
  const atReader = await fs.mkdtemp(join(work, 'reader-'))
  const site = await storescp(atSite, 'SITE')
  const reader = await storescp(atReader, 'READER')
  const proxy = await startFaultProxy({ target: { host: '127.0.0.1', port: reader.port }, bitsPerSecond: mbit * 1e6 })
  try {
    const push = await pushPaced(site.port, 'SITE', study.files, rate)
    const first = push.answeredAt[0] as number
    const last = push.answeredAt.at(-1) as number
    let firstImageAt: number | undefined
    let watching = true
    const watch = (async () => {
      while (watching && firstImageAt === undefined) {
        if ((await fs.readdir(atReader)).length > 0) firstImageAt = performance.now()
        else await new Promise(resolve => setTimeout(resolve, POLL_MS))
      }
    })()
    // The whole study is at the site: forward it over the link, as a store-and-forward router does.
    const forwarded = await runTool('/usr/bin/time', [
      '-f',
      'maxrss %M',
      'storescu',
      '-aec',
      'READER',
      '-aet',
      'SITE',
      '+sd',
      '+r',
      '127.0.0.1',
      String(proxy.port),
      atSite
    ])
    const allAt = performance.now()
    watching = false
    await watch
    if (forwarded.code !== 0) throw new Error(`the forwarding storescu failed: ${forwarded.stderr.slice(0, 500)}`)
    const received = (await fs.readdir(atReader)).length
    if (received !== slices) throw new Error(`the reader's storescp holds ${received} of ${slices} files`)
    const forwarderRss = Number(/maxrss (\d+)/.exec(forwarded.stderr)?.[1] ?? 0) / 1024
    return {
      afterLast: (allAt - last) / 1000,
      firstImageMs: (firstImageAt ?? allAt) - first,
      pushSeconds: (last - first) / 1000,
      rss: { site: Math.max(await peakRss(site.scp.pid), forwarderRss), reader: await peakRss(reader.scp.pid) },
      note: 'forwarded once the whole study was in'
    }
  } finally {
    site.scp.kill('SIGTERM')
    reader.scp.kill('SIGTERM')
    await proxy.close()
  }
}

const ways: Array<{ name: string; run: () => Promise<Turnaround> }> = [
  { name: 'radmesh (streamed)', run: radmeshRun },
  { name: 'DCMTK store-and-forward', run: storeAndForwardRun }
]
const results = new Map<string, Turnaround[]>(ways.map(way => [way.name, []]))
for (let round = 0; round < rounds; round++) {
  for (let i = 0; i < ways.length; i++) {
    const way = ways[(i + round) % ways.length] as (typeof ways)[number]
    await runTool('sync', [])
    try {
      results.get(way.name)?.push(await way.run())
    } catch (error) {
      process.stdout.write(`${way.name}: run failed: ${(error as Error).message}\n`)
    }
  }
}

const median = (list: number[]): number => [...list].sort((x, y) => x - y)[Math.floor(list.length / 2)] as number
const summary = ways.map(way => {
  const runs = results.get(way.name) ?? []
  return {
    name: way.name,
    runs: runs.length,
    afterLast: median(runs.map(run => run.afterLast)),
    firstImageMs: median(runs.map(run => run.firstImageMs)),
    pushSeconds: median(runs.map(run => run.pushSeconds)),
    site: Math.max(0, ...runs.map(run => run.rss.site)),
    reader: Math.max(0, ...runs.map(run => run.rss.reader)),
    note: runs.at(-1)?.note ?? ''
  }
})
const radmesh = summary[0] as (typeof summary)[number]
process.stdout.write(`median of ${rounds} round(s)\n`)
process.stdout.write(
  'way                        push (s)   last C-STORE -> all at reader   first C-STORE -> first image   ' +
    'peak RSS site / reader   radmesh vs this\n'
)
for (const row of summary) {
  if (row.runs === 0) {
    process.stdout.write(`${row.name.padEnd(26)} no successful run\n`)
    continue
  }
  const ratio = radmesh.runs === 0 ? '-' : `${(row.afterLast / radmesh.afterLast).toFixed(1)}x`
  process.stdout.write(
    `${row.name.padEnd(26)} ${row.pushSeconds.toFixed(1).padStart(8)}   ${`${row.afterLast.toFixed(2)} s`.padStart(29)}` +
      `   ${`${row.firstImageMs.toFixed(0)} ms`.padStart(28)}   ` +
      `${`${row.site.toFixed(0)} MB / ${row.reader.toFixed(0)} MB`.padStart(22)}   ${ratio.padStart(15)}   ${row.note}\n`
  )
}
if (radmesh.runs > 0) {
  process.stdout.write(
    `\ngoal: every image at the reader under 30 s after the last C-STORE (radmesh: ${radmesh.afterLast.toFixed(2)} s), ` +
      `first image under 1 s after the first C-STORE (radmesh: ${radmesh.firstImageMs.toFixed(0)} ms)\n`
  )
}
process.stdout.write(
  `(the link's floor: the study's ${(study.bytes / 1e6).toFixed(1)} MB at ${mbit} Mbit/s take ` +
    `${((study.bytes * 8) / (mbit * 1e6)).toFixed(1)} s uncompressed; radmesh compresses chunks on the wire; ` +
    "radmesh vs this = that way's time after the last C-STORE / radmesh's)\n"
)
await fs.rm(work, { recursive: true, force: true })
process.exit(0)

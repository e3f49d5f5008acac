/**
 * Transfer benchmark (issue 4): the same synthetic CT moved between two processes on loopback, three ways,
 * in one run: radmesh site -> reader (share, then fetch until complete; verified afterwards), DCMTK
 * storescu -> storescp (TCP_NODELAY=1 on both), and Orthanc -> Orthanc (`POST /peers/NAME/store`,
 * synchronous); and, as the floor under every libp2p transfer, the same byte count over bare libp2p.
 * Prints wall times, MB/s, ratios, radmesh's time to first image and peak RSS (VmHWM) at both ends.
 * A way that fails is reported as such; the others still run and print.
 *
 * With `--mbit N`, every way's one link (radmesh reader -> site, storescu -> storescp, Orthanc -> its peer's
 * HTTP, the bare pipe) goes through the same userland rate-limiting proxy (scripts/lib/fault-proxy.ts),
 * N Mbit/s each way; the radmesh reader announces a closed port, so the site cannot dial it around the proxy.
 * `--latency-ms M` adds M ms each way to that link (a round trip of 2M ms). Without `--mbit`, loopback.
 *
 * With `--big`, the study is the ingest benchmark's 2.10 GB one (4000 slices), one round unless `--rounds` says
 * otherwise: every way moves ten times the bytes, so memory that grows with a transfer's length shows.
 *
 * With `--holders 2`, radmesh alone: a reader fetching from one holder, then from two, each behind its own
 * `--mbit` link (20 unless told); see transfer-holders.ts.
 *
 *   npm run bench -- transfer [--slices 400] [--rounds 3] [--mbit N [--latency-ms M]] [--holders 2] [--big]
 */
import { spawn } from 'node:child_process'
import { promises as fs } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import type { Availability } from '../../protocol/api/studies.ts'
import { HEAP_FLAGS, MALLOC_ENV } from '../../node/heap.ts'
import { generateCt } from '../generate-ct.ts'
import { runTool } from '../lib/dcmtk.ts'
import { type FaultProxy, startFaultProxy } from '../lib/fault-proxy.ts'
import { freePort } from '../lib/ports.ts'
import { createScratchConsortium } from '../lib/consortium.ts'
import { startOrthanc } from '../lib/orthanc.ts'
import { connected, p2pAddr, startNode } from '../lib/node-process.ts'
import { tempDir } from '../lib/temp.ts'
import { waitFor } from '../lib/wait.ts'
import { type Contender, peakRss, type Run, runRounds, timeStorescu } from './common.ts'
import { benchHolders } from './transfer-holders.ts'
import { unexpected, VERIFY_SAMPLE, verify } from './transfer-verify.ts'

const { values } = parseArgs({
  options: {
    slices: { type: 'string' },
    rounds: { type: 'string' },
    mbit: { type: 'string' },
    'latency-ms': { type: 'string', default: '0' },
    holders: { type: 'string', default: '1' },
    big: { type: 'boolean', default: false }
  }
})
/** `--big`: the ingest benchmark's 2.10 GB study (4000 slices), one round unless told */
const slices = Number(values.slices ?? (values.big ? '4000' : '400'))
const rounds = Number(values.rounds ?? (values.big ? '1' : '3'))
/** the link's rate each way, Mbit/s; undefined = loopback, no proxy */
const mbit = values.mbit === undefined ? undefined : Number(values.mbit)
/** one-way delay the link adds, ms (with `--mbit`) */
const latencyMs = Number(values['latency-ms'])
if (mbit === undefined && latencyMs !== 0) throw new Error('--latency-ms is a property of a link: give --mbit too')
const linkName =
  mbit === undefined
    ? 'loopback'
    : `a ${mbit} Mbit/s link${latencyMs > 0 ? ` with ${latencyMs} ms each way` : ''} (userland proxy)`
/** The proxy's settings for the link in front of `port`. */
const link = (port: number) => ({
  target: { host: '127.0.0.1', port },
  bitsPerSecond: (mbit as number) * 1e6,
  ...(latencyMs > 0 ? { latencyMs } : {})
})

/** A rate-limited proxy in front of `port` for the length of `run`, or no proxy on loopback. */
async function throughLink<T>(port: number, run: (port: number) => Promise<T>): Promise<T> {
  if (mbit === undefined) return await run(port)
  const proxy: FaultProxy = await startFaultProxy(link(port))
  try {
    return await run(proxy.port)
  } finally {
    await proxy.close()
  }
}

/** Peak RSS of each way's two ends (sending, receiving), the highest over the rounds, MB. */
const ends = new Map<string, { sending: number; receiving: number }>()
function recordEnds(way: string, sending: number, receiving: number): void {
  const seen = ends.get(way) ?? { sending: 0, receiving: 0 }
  ends.set(way, { sending: Math.max(seen.sending, sending), receiving: Math.max(seen.receiving, receiving) })
}
/** how often the reader's availability is polled while it fetches */
const POLL_MS = 20

const work = await tempDir('radmesh-bench-')
process.stdout.write(`transfer benchmark: ${slices} slices 512x512 16-bit CT between two processes over ${linkName}\n`)
process.stdout.write(
  `machine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, ` +
    `node ${process.version}, ${new Date().toISOString()}\n`
)
const studyDir = join(work, 'study')
const study = await generateCt({ out: studyDir, slices, rows: 512, columns: 512, seed: 1 })
const studyUid = study.studyInstanceUid
process.stdout.write(`study: ${study.files.length} files, ${(study.bytes / 1e6).toFixed(1)} MB\n\n`)
if (values.holders === '2') {
  // One holder against two, each behind its own link (transfer-holders.ts); the other ways are not run.
  await benchHolders(study, studyDir, rounds, mbit ?? 20)
  await fs.rm(work, { recursive: true, force: true })
  process.exit(0)
}

/** Why a way failed last, to print in its row when it never succeeded. */
const failures = new Map<string, string>()
const recordingFailure = (contender: Contender): Contender => ({
  name: contender.name,
  run: async () => {
    try {
      return await contender.run()
    } catch (error) {
      failures.set(contender.name, (error as Error).message.split('\n')[0] ?? '')
      throw error
    }
  }
})

/** Peak RSS of each radmesh node, the highest over the rounds. */
const radmeshRss = { site: 0, reader: 0 }

async function radmeshRun(): Promise<Run> {
  const consortium = await createScratchConsortium('Bench')
  const site = await startNode(await consortium.member('Bench Site', 'site'), { dicom: true, preallocateMib: null })
  const proxy = mbit === undefined ? undefined : await startFaultProxy(link(site.p2pPort))
  const siteAddr = proxy === undefined ? p2pAddr(site) : `/ip4/127.0.0.1/tcp/${proxy.port}/p2p/${site.peerId}`
  // Behind the proxy, the reader cannot be dialled (it announces a port nobody listens on): every byte crosses
  // the link.
  const undialable = proxy === undefined ? {} : { extraArgs: ['--announce', `/ip4/127.0.0.1/tcp/${await freePort()}`] }
  const reader = await startNode(await consortium.member('Bench Reader', 'radiologist'), {
    peers: [siteAddr],
    preallocateMib: null,
    ...undialable
  })
  try {
    await connected(site, reader, 15_000)
    await timeStorescu(site.dicomPort, 'RADMESH', studyDir)
    const shared = await site.api('POST', `/api/studies/${studyUid}/share`, { peerIds: [reader.peerId] })
    if (shared.status !== 200) throw unexpected('POST share on the site', shared.status, shared.body)

    const started = performance.now()
    const fetched = await reader.api('POST', `/api/studies/${studyUid}/fetch`)
    if (fetched.status !== 202) throw unexpected('POST fetch on the reader', fetched.status, fetched.body)
    let firstImageMs: number | undefined
    const deadline = Date.now() + 600_000
    for (;;) {
      const { status, body } = await reader.api<Availability>('GET', `/api/studies/${studyUid}/availability`)
      if (status !== 200) throw unexpected('GET availability on the reader', status, body)
      if (body.state === 'failed') throw new Error(`the fetch failed: ${body.error ?? 'no reason given'}`)
      if (firstImageMs === undefined && body.instancesLocal >= 1) firstImageMs = performance.now() - started
      if (body.complete) break
      if (Date.now() > deadline)
        throw new Error(`not complete after 600 s: ${body.instancesLocal} of ${body.instancesTotal} instances`)
      await new Promise(resolve => setTimeout(resolve, POLL_MS))
    }
    const seconds = (performance.now() - started) / 1000

    const [siteRss, readerRss] = [await peakRss(site.process.pid), await peakRss(reader.process.pid)]
    radmeshRss.site = Math.max(radmeshRss.site, siteRss)
    radmeshRss.reader = Math.max(radmeshRss.reader, readerRss)
    recordEnds('radmesh site -> reader', siteRss, readerRss)
    await verify(study, site, reader)
    return { seconds, firstImageMs: firstImageMs ?? seconds * 1000, rssMb: Math.max(siteRss, readerRss) }
  } finally {
    await Promise.all([site.stop(), reader.stop()])
    await proxy?.close()
  }
}

/** storescu -> storescp (which writes files, nothing else), through the link; storescu's peak RSS by /usr/bin/time. */
async function dcmtkRun(): Promise<Run> {
  const port = await freePort()
  const out = await fs.mkdtemp(join(work, 'storescp-'))
  const scp = spawn('storescp', ['-od', out, '-aet', 'STORESCP', String(port)], {
    env: { ...process.env, TCP_NODELAY: '1' },
    stdio: 'ignore'
  })
  try {
    await waitFor(
      'storescp',
      async () => (await runTool('echoscu', ['-aec', 'STORESCP', '127.0.0.1', String(port)])).code === 0,
      10_000,
      100
    )
    const { seconds, scuRss } = await throughLink(port, async linkPort => {
      const started = performance.now()
      const result = await runTool('/usr/bin/time', [
        '-f',
        'maxrss %M',
        'storescu',
        '-aec',
        'STORESCP',
        '-aet',
        'BENCH',
        '+sd',
        '+r',
        '127.0.0.1',
        String(linkPort),
        studyDir
      ])
      if (result.code !== 0) throw new Error(`storescu failed: ${result.stderr.slice(0, 500)}`)
      return {
        seconds: (performance.now() - started) / 1000,
        scuRss: Number(/maxrss (\d+)/.exec(result.stderr)?.[1] ?? 0) / 1024
      }
    })
    const scpRss = await peakRss(scp.pid)
    recordEnds('DCMTK storescu -> storescp', scuRss, scpRss)
    return { seconds, rssMb: Math.max(scuRss, scpRss) }
  } finally {
    scp.kill('SIGTERM')
    await fs.rm(out, { recursive: true, force: true })
  }
}

async function orthancRun(): Promise<Run> {
  const target = await startOrthanc()
  const targetPort = Number(new URL(target.http).port)
  const proxy = mbit === undefined ? undefined : await startFaultProxy(link(targetPort))
  const url = proxy === undefined ? `${target.http}/` : `http://127.0.0.1:${proxy.port}/`
  const origin = await startOrthanc({ peers: { target: { Url: url } } })
  try {
    await timeStorescu(origin.dicomPort, origin.aeTitle, studyDir)
    const [id] = await origin.request<string[]>('GET', '/studies')
    if (id === undefined) throw new Error('the origin Orthanc holds no study after storescu')
    const started = performance.now()
    // Synchronous: the call returns once every instance is on the peer (the default of Orthanc 1.10 too).
    const stored = await origin.request<{ InstancesCount?: number; FailedInstancesCount?: number }>(
      'POST',
      '/peers/target/store',
      { Resources: [id], Synchronous: true }
    )
    const seconds = (performance.now() - started) / 1000
    if ((stored.FailedInstancesCount ?? 0) > 0)
      throw new Error(`Orthanc peer store failed ${stored.FailedInstancesCount} instances`)
    const onTarget = await target.request<unknown[]>('GET', `/studies/${id}/instances`)
    if (onTarget.length !== study.files.length)
      throw new Error(`the Orthanc peer got ${onTarget.length} of ${study.files.length} instances`)
    const [originRss, targetRss] = [await peakRss(origin.process.pid), await peakRss(target.process.pid)]
    recordEnds('Orthanc -> Orthanc (peers)', originRss, targetRss)
    return { seconds, rssMb: Math.max(originRss, targetRss) }
  } finally {
    await Promise.all([origin.stop(), target.stop()])
    await proxy?.close()
  }
}

/** streams the bare libp2p pipe pulls over (the fastest of 1, 2, 4 and 8 measured here) */
const PIPE_STREAMS = 4
const PIPE = join(import.meta.dirname, 'libp2p-pipe.ts')
/**
 * The pipe runs with the runtime settings `radmesh start` gives a node (bin/radmesh: the young generation and
 * glibc's allocator settings, MALLOC_ENV; node/heap.ts: the heap's growth and off-heap accounting), so that its
 * time and peak RSS are the floor under a node's too, not V8's and glibc's defaults.
 */
const PIPE_NODE_FLAGS = ['--max-semi-space-size=8', ...HEAP_FLAGS]
const PIPE_ENV = { ...process.env, ...MALLOC_ENV }

/**
 * The study's byte count over bare libp2p (TCP + Noise + Yamux) between two processes: no content encryption,
 * no verification, no storage. Any libp2p transfer, radmesh's included, takes at least this long here.
 */
async function libp2pPipeRun(): Promise<Run> {
  const server = spawn(process.execPath, [...PIPE_NODE_FLAGS, PIPE, 'serve'], {
    env: PIPE_ENV,
    stdio: ['ignore', 'pipe', 'inherit']
  })
  try {
    const lines = createInterface({ input: server.stdout })
    const address = await new Promise<string>((resolve, reject) => {
      lines.once('line', resolve)
      server.once('exit', code => {
        reject(new Error(`the libp2p pipe server exited with ${code}`))
      })
    })
    const port = Number(/\/tcp\/(\d+)/.exec(address)?.[1])
    const pulled = await throughLink(port, async linkPort => {
      const through = address.replace(`/tcp/${port}/`, `/tcp/${linkPort}/`)
      const client = spawn(
        process.execPath,
        [...PIPE_NODE_FLAGS, PIPE, 'pull', through, String(study.bytes), String(PIPE_STREAMS)],
        { env: PIPE_ENV, stdio: ['ignore', 'pipe', 'inherit'] }
      )
      let output = ''
      client.stdout.on('data', (data: Buffer) => {
        output += data.toString()
      })
      const code = await new Promise<number | null>(resolve => client.once('exit', resolve))
      if (code !== 0) throw new Error(`the libp2p pipe client exited with ${code}`)
      return JSON.parse(output) as { seconds: number; rssMb: number }
    })
    const serverRss = await peakRss(server.pid)
    recordEnds('bare libp2p pipe (floor)', serverRss, pulled.rssMb)
    return { seconds: pulled.seconds, rssMb: Math.max(serverRss, pulled.rssMb) }
  } finally {
    server.kill('SIGTERM')
  }
}

const ways: Contender[] = [
  { name: 'radmesh site -> reader', run: radmeshRun },
  { name: 'DCMTK storescu -> storescp', run: dcmtkRun },
  { name: 'Orthanc -> Orthanc (peers)', run: orthancRun },
  // Over a rate-limited link the floor is the link itself (printed below); the pipe measures loopback only.
  ...(mbit === undefined ? [{ name: 'bare libp2p pipe (floor)', run: libp2pPipeRun }] : [])
].map(recordingFailure)

const summary = await runRounds(ways, rounds)
const radmesh = summary[0] as (typeof summary)[number]
process.stdout.write(`median of ${rounds} rounds (order rotated, disk synced before each run)\n`)
process.stdout.write(
  'way                          seconds (min-max)      MB/s   first image   peak RSS   radmesh speed vs this\n'
)
for (const row of summary) {
  if (row.runs === 0) {
    process.stdout.write(`${row.name.padEnd(28)} no successful run: ${failures.get(row.name) ?? 'unknown'}\n`)
    continue
  }
  const spread = `(${row.min.toFixed(2)}-${row.max.toFixed(2)})`
  const first = row.firstImageMs === undefined ? '-' : `${row.firstImageMs.toFixed(0)} ms`
  const ratio = radmesh.runs === 0 ? '-' : `${(row.seconds / radmesh.seconds).toFixed(2)}x`
  process.stdout.write(
    `${row.name.padEnd(28)} ${row.seconds.toFixed(2).padStart(7)} ${spread.padEnd(13)}  ` +
      `${(study.bytes / 1e6 / row.seconds).toFixed(0).padStart(5)}   ${first.padStart(11)}   ` +
      `${row.rssMb.toFixed(0).padStart(5)} MB   ${ratio}\n`
  )
}
process.stdout.write('\n')
if (radmesh.runs > 0) {
  process.stdout.write(
    `radmesh peak RSS: site ${radmeshRss.site.toFixed(0)} MB, reader ${radmeshRss.reader.toFixed(0)} MB; ` +
      `reader verified after each run (QIDO lists all ${study.files.length} instances, ` +
      `${Math.min(VERIFY_SAMPLE, study.files.length)} random ones byte-identical by WADO-RS)\n`
  )
  const dcmtk = summary.find(row => row.name.startsWith('DCMTK'))
  if (mbit !== undefined && dcmtk !== undefined && dcmtk.runs > 0) {
    process.stdout.write(
      `radmesh's time / DCMTK's: ${(radmesh.seconds / dcmtk.seconds).toFixed(2)} (goal at 20 Mbit/s: at most 0.5)\n`
    )
  }
}
process.stdout.write('peak RSS at both ends (sending / receiving):\n')
for (const [way, rss] of ends)
  process.stdout.write(
    `  ${way.padEnd(28)} ${rss.sending.toFixed(0).padStart(5)} MB / ${rss.receiving.toFixed(0).padStart(5)} MB\n`
  )
if (mbit !== undefined) {
  process.stdout.write(
    `(the link's floor: the study's ${(study.bytes / 1e6).toFixed(1)} MB at ${mbit} Mbit/s take ` +
      `${((study.bytes * 8) / (mbit * 1e6)).toFixed(2)} s uncompressed; the bare libp2p pipe is run on loopback only)\n`
  )
} else
  process.stdout.write(
    '(bare libp2p pipe: the same byte count over TCP + Noise + Yamux between two processes, ' +
      `${PIPE_STREAMS} streams, nothing else done: no libp2p transfer can be faster here)\n`
  )
process.stdout.write(
  '(peak RSS of a two-process way is the larger of the two; ' +
    "radmesh speed vs this = that way's time / radmesh's time: above 1 means radmesh is faster)\n"
)
await fs.rm(work, { recursive: true, force: true })
process.exit(0)

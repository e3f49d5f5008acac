/**
 * Where a fetch's time goes: one site -> reader fetch of the transfer benchmark's CT on loopback, both nodes
 * started under `node --cpu-prof`, and for each node the functions that took the most of its main thread
 * during the fetch (the profiles' samples cut to the fetch's window; `(idle)` is time the event loop waited).
 * Not a comparison: it says which pass over the bytes to remove next.
 *
 *   npm run bench -- transfer-profile [--slices 400] [--top 20] [--keep DIR]
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import type { Availability } from '../../protocol/api/studies.ts'
import { generateCt } from '../generate-ct.ts'
import { createScratchConsortium } from '../lib/consortium.ts'
import { connected, p2pAddr, startNode } from '../lib/node-process.ts'
import { tempDir } from '../lib/temp.ts'
import { peakRss, timeStorescu } from './common.ts'

const { values } = parseArgs({
  options: {
    slices: { type: 'string', default: '400' },
    top: { type: 'string', default: '20' },
    keep: { type: 'string' }
  }
})
const top = Number(values.top)

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>
  startTime: number
  samples: number[]
  timeDeltas: number[]
}

/** Self time per function (ms) of the samples taken between `from` and `to` (µs, the profile's clock). */
function selfTimes(profile: CpuProfile, from: number, to: number): Map<string, number> {
  const frames = new Map(profile.nodes.map(node => [node.id, node.callFrame]))
  const times = new Map<string, number>()
  let at = profile.startTime
  for (const [i, sample] of profile.samples.entries()) {
    const delta = profile.timeDeltas[i] ?? 0
    at += delta
    if (at < from || at > to) continue
    const frame = frames.get(sample)
    const file = (frame?.url ?? '').replace(/^.*?\/(node_modules\/|node\/|protocol\/)/, '$1') || '(native)'
    const name = `${frame?.functionName || '(anonymous)'} ${file}:${frame?.lineNumber ?? -1}`
    times.set(name, (times.get(name) ?? 0) + delta / 1000)
  }
  return times
}

const work = await tempDir('radmesh-profile-')
const profiles = values.keep ?? join(work, 'profiles')
// Profiles of an earlier run kept in the same place would be taken for this one's.
await Promise.all(
  ['site', 'reader'].map(async name => await fs.rm(join(profiles, name), { recursive: true, force: true }))
)
const study = await generateCt({
  out: join(work, 'study'),
  slices: Number(values.slices),
  rows: 512,
  columns: 512,
  seed: 1
})
process.stdout.write(
  `transfer profile: ${study.files.length} files, ${(study.bytes / 1e6).toFixed(1)} MB on loopback\n`
)
const consortium = await createScratchConsortium('Profile')
const profiled = (name: string): { env: NodeJS.ProcessEnv } => ({
  env: { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${join(profiles, name)}` }
})
const site = await startNode(await consortium.member('Profile Site', 'site'), {
  dicom: true,
  preallocateMib: null,
  ...profiled('site')
})
const reader = await startNode(await consortium.member('Profile Reader', 'radiologist'), {
  peers: [p2pAddr(site)],
  preallocateMib: null,
  ...profiled('reader')
})
let window: { from: number; to: number; seconds: number }
try {
  await connected(site, reader, 15_000)
  await timeStorescu(site.dicomPort, 'RADMESH', join(work, 'study'))
  const uid = study.studyInstanceUid
  const shared = await site.api('POST', `/api/studies/${uid}/share`, { peerIds: [reader.peerId] })
  if (shared.status !== 200) throw new Error(`share: HTTP ${shared.status}`)
  // The profiles' clock is the monotonic one, in µs, as process.hrtime's.
  const from = Number(process.hrtime.bigint() / 1000n)
  const started = performance.now()
  await reader.api('POST', `/api/studies/${uid}/fetch`)
  for (;;) {
    const { body } = await reader.api<Availability>('GET', `/api/studies/${uid}/availability`)
    if (body.state === 'failed') throw new Error(`the fetch failed: ${body.error ?? 'no reason given'}`)
    if (body.complete) break
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  window = { from, to: Number(process.hrtime.bigint() / 1000n), seconds: (performance.now() - started) / 1000 }
  const rss = `site ${(await peakRss(site.process.pid)).toFixed(0)} MB, reader ${(await peakRss(reader.process.pid)).toFixed(0)} MB`
  process.stdout.write(`fetch: ${window.seconds.toFixed(2)} s (profiling slows it), peak RSS ${rss}\n`)
} finally {
  // A profile is written when the node exits of itself (SIGTERM), not when it is killed.
  await Promise.all([site.stop(), reader.stop()])
}
for (const name of ['site', 'reader']) {
  const dir = join(profiles, name)
  // The main thread's profile is the largest: workers write smaller ones, and so does the launcher, which
  // replaces itself with the node under the same pid (bin/radmesh).
  const files = (await fs.readdir(dir)).filter(file => file.endsWith('.cpuprofile'))
  const sizes = await Promise.all(files.map(async file => ({ file, size: (await fs.stat(join(dir, file))).size })))
  const [main] = sizes.sort((a, b) => b.size - a.size)
  if (main === undefined) throw new Error(`no profile from the ${name} in ${dir}`)
  const profile = JSON.parse(await fs.readFile(join(dir, main.file), 'utf8')) as CpuProfile
  const times = [...selfTimes(profile, window.from, window.to)].sort((a, b) => b[1] - a[1])
  const total = times.reduce((sum, [, ms]) => sum + ms, 0)
  process.stdout.write(`\n${name}: main thread over the fetch, ${total.toFixed(0)} ms sampled; self time, ms:\n`)
  for (const [fn, ms] of times.slice(0, top)) process.stdout.write(`${ms.toFixed(0).padStart(7)}  ${fn}\n`)
}
if (values.keep !== undefined) process.stdout.write(`\nprofiles kept in ${profiles} (open them in Chrome DevTools)\n`)
await fs.rm(work, { recursive: true, force: true })

/**
 * Transfer benchmark (issue 4): the same synthetic CT moved between two processes on loopback, three ways,
 * in one run: DCMTK storescu -> storescp (TCP_NODELAY=1 on both), Orthanc -> Orthanc (peers, synchronous
 * store), and radmesh site -> reader (share, then fetch until complete and verified). Prints wall times,
 * ratios, radmesh's time to first image and peak RSS.
 *
 *   npm run bench -- transfer [--slices 400] [--rounds 3]
 */
import { promises as fs } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { generateCt } from '../generate-ct.ts'
import { createTestConsortium } from '../../test/helpers/consortium.ts'
import { startOrthanc } from '../../test/helpers/orthanc.ts'
import { p2pAddr, peersOf, startNode, tempDir, waitFor } from '../../test/helpers/processes.ts'
import { type Contender, peakRss, runRounds, runStorescp, timeStorescu } from './common.ts'

const { values } = parseArgs({ options: { slices: { type: 'string', default: '400' }, rounds: { type: 'string', default: '3' } } })
const slices = Number(values.slices)
const rounds = Number(values.rounds)



const work = await tempDir('radmesh-bench-')
process.stdout.write(`transfer benchmark: ${slices} slices 512x512 16-bit CT between two processes on loopback\n`)
process.stdout.write(`machine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, ${new Date().toISOString()}\n`)
const studyDir = join(work, 'study')
const study = await generateCt({ out: studyDir, slices, rows: 512, columns: 512, seed: 1 })
process.stdout.write(`study: ${study.files.length} files, ${(study.bytes / 1e6).toFixed(1)} MB\n\n`)

const ways: Contender[] = [
  {
    name: 'radmesh site -> reader',
    run: async () => {
      const consortium = await createTestConsortium('Bench')
      const site = await startNode(await consortium.member('Bench Site', 'site'), { dicom: true })
      const reader = await startNode(await consortium.member('Bench Reader', 'radiologist'), { peers: [p2pAddr(site)] })
      try {
        await waitFor('site and reader to connect', async () => (await peersOf(site)).some(p => p.peerId === reader.peerId), 15_000)
        await timeStorescu(site.dicomPort, 'RADMESH', studyDir)
        const shared = await site.api('POST', `/api/studies/${study.studyInstanceUid}/share`, { peerIds: [reader.peerId] })
        if (shared.status !== 200) throw new Error(`share answered ${shared.status}: ${JSON.stringify(shared.body)}`)
        const started = performance.now()
        await reader.api('POST', `/api/studies/${study.studyInstanceUid}/fetch`)
        let firstImageMs: number | undefined
        await waitFor('the study to be complete on the reader', async () => {
          const { body } = await reader.api<{ instancesLocal: number, complete: boolean, state: string, error?: string }>('GET', `/api/studies/${study.studyInstanceUid}/availability`)
          if (body.state === 'failed') throw new Error(`fetch failed: ${body.error}`)
          if (firstImageMs === undefined && body.instancesLocal > 0) firstImageMs = performance.now() - started
          return body.complete
        }, 600_000, 20)
        const seconds = (performance.now() - started) / 1000
        return { seconds, firstImageMs: firstImageMs ?? seconds * 1000, rssMb: Math.max(await peakRss(site.process.pid), await peakRss(reader.process.pid)) }
      } finally {
        await Promise.all([site.stop(), reader.stop()])
      }
    }
  },
  { name: 'DCMTK storescu -> storescp', run: async () => await runStorescp(work, studyDir) },
  {
    name: 'Orthanc -> Orthanc (peers)',
    run: async () => {
      const target = await startOrthanc()
      const origin = await startOrthanc({ peers: { target: { Url: `${target.http}/` } } })
      try {
        await timeStorescu(origin.dicomPort, origin.aeTitle, studyDir)
        const [id] = await origin.request<string[]>('GET', '/studies')
        const started = performance.now()
        await origin.request('POST', '/peers/target/store', { Resources: [id], Synchronous: true })
        const seconds = (performance.now() - started) / 1000
        const stats = await target.request<{ CountInstances: number }>('GET', '/statistics')
        if (stats.CountInstances !== study.files.length) throw new Error(`Orthanc peer got ${stats.CountInstances} of ${study.files.length} instances`)
        return { seconds, rssMb: Math.max(await peakRss(origin.process.pid), await peakRss(target.process.pid)) }
      } finally {
        await Promise.all([origin.stop(), target.stop()])
      }
    }
  }
]

const summary = await runRounds(ways, rounds)
const radmesh = summary[0] as (typeof summary)[number]
process.stdout.write(`median of ${rounds} rounds (order rotated, disk synced before each run)\n`)
process.stdout.write('way                          seconds (min-max)      MB/s   first image   peak RSS   radmesh speed vs this\n')
for (const row of summary) {
  if (row.runs === 0) {
    process.stdout.write(`${row.name.padEnd(28)} no successful run\n`)
    continue
  }
  const spread = `(${row.min.toFixed(2)}-${row.max.toFixed(2)})`
  const first = row.firstImageMs === undefined ? '-' : `${row.firstImageMs.toFixed(0)} ms`
  process.stdout.write(`${row.name.padEnd(28)} ${row.seconds.toFixed(2).padStart(7)} ${spread.padEnd(13)}  ${(study.bytes / 1e6 / row.seconds).toFixed(0).padStart(5)}   ${first.padStart(11)}   ${row.rssMb.toFixed(0).padStart(5)} MB   ${(row.seconds / radmesh.seconds).toFixed(2)}x\n`)
}
process.stdout.write('\n(radmesh speed vs this = that way\'s time / radmesh\'s time: above 1 means radmesh is faster)\n')
await fs.rm(work, { recursive: true, force: true })
process.exit(0)

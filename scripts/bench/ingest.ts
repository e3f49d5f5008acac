/**
 * Ingest benchmark (issue 3): the same synthetic CT sent by DCMTK storescu (TCP_NODELAY=1 on both ends)
 * to a radmesh node, to Orthanc and to DCMTK storescp, one after the other in this run.
 * Prints wall time, instances/s, ratios, and the peak RSS (VmHWM) of each receiver.
 *
 *   npm run bench -- ingest [--slices 400] [--rows 512] [--rounds 3] [--big]
 *
 * --big also sends a ~2 GB study (4000 slices) to radmesh alone and reports its peak RSS.
 */
import { promises as fs } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { generateCt } from '../generate-ct.ts'
import { createScratchConsortium } from '../lib/consortium.ts'
import { startOrthanc } from '../lib/orthanc.ts'
import { runTool } from '../lib/dcmtk.ts'
import { startNode } from '../lib/node-process.ts'
import { tempDir } from '../lib/temp.ts'
import { DEFAULT_PREALLOCATE_SITE } from '../../node/archive/chunks.ts'
import { type Contender, packSpaceReady, peakRss, runRounds, runStorescp, timeStorescu } from './common.ts'

const { values } = parseArgs({
  options: {
    slices: { type: 'string', default: '400' },
    rows: { type: 'string', default: '512' },
    rounds: { type: 'string', default: '3' },
    big: { type: 'boolean', default: false }
  }
})
const slices = Number(values.slices)
const rows = Number(values.rows)
const rounds = Number(values.rounds)

const work = await tempDir('radmesh-bench-')
process.stdout.write(`ingest benchmark: ${slices} slices ${rows}x${rows} 16-bit CT, storescu with TCP_NODELAY=1\n`)
process.stdout.write(
  `machine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, ` +
    `node ${process.version}, ${new Date().toISOString()}\n`
)
const study = await generateCt({ out: join(work, 'study'), slices, rows, columns: rows, seed: 1 })
process.stdout.write(`study: ${study.files.length} files, ${(study.bytes / 1e6).toFixed(1)} MB\n\n`)

const receivers: Contender[] = [
  {
    name: 'radmesh',
    run: async () => {
      const consortium = await createScratchConsortium('Bench')
      const node = await startNode(await consortium.member('Bench Site', 'site'), { dicom: true, preallocateMib: null })
      try {
        await packSpaceReady(node.home, DEFAULT_PREALLOCATE_SITE)
        const seconds = await timeStorescu(node.dicomPort, 'RADMESH', join(work, 'study'))
        return { seconds, rssMb: await peakRss(node.process.pid) }
      } finally {
        await node.stop()
      }
    }
  },
  {
    name: 'Orthanc',
    run: async () => {
      const orthanc = await startOrthanc()
      try {
        const seconds = await timeStorescu(orthanc.dicomPort, orthanc.aeTitle, join(work, 'study'))
        return { seconds, rssMb: await peakRss(orthanc.process.pid) }
      } finally {
        await orthanc.stop()
      }
    }
  },
  { name: 'DCMTK storescp', run: async () => await runStorescp(work, join(work, 'study')) }
]

// Each receiver runs `rounds` times, the order rotating each round; the median is reported.
const summary = await runRounds(receivers, rounds)
const radmesh = summary[0] as (typeof summary)[number]
process.stdout.write(`median of ${rounds} rounds (order rotated, disk synced before each run)\n`)
process.stdout.write('receiver           seconds (min-max)    instances/s   MB/s    peak RSS   radmesh speed vs this\n')
for (const row of summary) {
  const rate = study.files.length / row.seconds
  const spread = `(${row.min.toFixed(2)}-${row.max.toFixed(2)})`
  process.stdout.write(
    `${row.name.padEnd(18)} ${row.seconds.toFixed(2).padStart(7)} ${spread.padEnd(12)}   ` +
      `${rate.toFixed(0).padStart(11)}   ${(study.bytes / 1e6 / row.seconds).toFixed(0).padStart(4)}   ` +
      `${row.rssMb.toFixed(0).padStart(5)} MB   ${(row.seconds / radmesh.seconds).toFixed(2)}x` +
      `${row.runs < rounds ? ` (only ${row.runs} runs)` : ''}\n`
  )
}
process.stdout.write(
  "\n(radmesh speed vs this = that receiver's time / radmesh's time: above 1 means radmesh is faster)\n"
)

if (values.big) {
  const big = await generateCt({ out: join(work, 'big'), slices: 4000, rows: 512, columns: 512, seed: 2 })
  const consortium = await createScratchConsortium('Bench big')
  const node = await startNode(await consortium.member('Bench Big', 'site'), { dicom: true, preallocateMib: null })
  await packSpaceReady(node.home, DEFAULT_PREALLOCATE_SITE)
  await runTool('sync', [])
  const seconds = await timeStorescu(node.dicomPort, 'RADMESH', join(work, 'big'))
  process.stdout.write(
    `\n2 GB study: ${big.files.length} files, ${(big.bytes / 1e9).toFixed(2)} GB into radmesh in ` +
      `${seconds.toFixed(1)} s, peak RSS ${(await peakRss(node.process.pid)).toFixed(0)} MB\n`
  )
  await node.stop()
}
await fs.rm(work, { recursive: true, force: true })
process.exit(0)

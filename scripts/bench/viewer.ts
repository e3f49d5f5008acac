/**
 * Viewer benchmark (issue 6), in Debian's headless Chromium, on one machine:
 *
 * - Time to first image: a reader's node fetches a STAT CT from the site over a rate-limited link (a
 *   userland proxy; 400 Mbit/s by default), and the bench clicks Open on the reader's worklist page as soon
 *   as the case is there. Measured: click -> first image drawn, and how much of the study was local then.
 *   Against: the conventional push, where the reader waits for the whole study (DCMTK storescu ->
 *   storescp over the same kind of link), then renders the first slice (dcmj2pnm).
 * - Scrolling, once the study is local: the viewer steps through the 400 slices, each decoded, rendered and
 *   on screen (one animation frame each), cold (first pass) and warm (second pass). Against: DCMTK's
 *   reference renderer, dcmj2pnm, one slice per process (it has no stack mode).
 *
 *   npm run bench -- viewer [--slices 400] [--mbit 400] [--rounds 3]
 */
import { promises as fs } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { generateCt } from '../generate-ct.ts'
import { launchBrowser, signedInPage } from '../lib/browser.ts'
import { createScratchConsortium } from '../lib/consortium.ts'
import { runTool, storescu } from '../lib/dcmtk.ts'
import { startFaultProxy } from '../lib/fault-proxy.ts'
import { freePort } from '../lib/ports.ts'
import { knowsRadiologists, peersOf, type StartedNode, startNode } from '../lib/node-process.ts'
import { tempDir } from '../lib/temp.ts'
import { waitFor } from '../lib/wait.ts'
import { spawn } from 'node:child_process'

const { values } = parseArgs({
  options: {
    slices: { type: 'string', default: '400' },
    mbit: { type: 'string', default: '400' },
    rounds: { type: 'string', default: '3' }
  }
})
const slices = Number(values.slices)
const mbit = Number(values.mbit)
const rounds = Number(values.rounds)
const median = (list: number[]): number => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)] ?? Number.NaN

const work = await tempDir('radmesh-bench-')
process.stdout.write(
  `viewer benchmark: ${slices}-slice 512x512 CT, reader link ${mbit} Mbit/s, headless Chromium, ${rounds} rounds\n`
)
process.stdout.write(
  `machine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, ` +
    `node ${process.version}, ${new Date().toISOString()}\n`
)
const studies = []
for (let round = 0; round < rounds; round++) {
  studies.push(
    await generateCt({
      out: join(work, `study-${round}`),
      slices,
      rows: 512,
      columns: 512,
      seed: 100 + round,
      studyDescription: 'CT HEAD STROKE PROTOCOL',
      bodyPart: 'HEAD'
    })
  )
}
process.stdout.write(
  `studies: ${rounds} x ${studies[0]?.files.length} files, ${((studies[0]?.bytes ?? 0) / 1e6).toFixed(1)} MB each\n\n`
)

// radmesh: a site, and a reader whose only way to the site is the rate-limited proxy.
const consortium = await createScratchConsortium('Viewer bench')
const nodes: StartedNode[] = []
const browser = await launchBrowser()
const firstImage: Array<{ ms: number; local: number; total: number }> = []
const scrollCold: number[] = []
const scrollWarm: number[] = []
try {
  const site = await startNode(await consortium.member('Bench Site', 'site'), {
    dicom: true,
    preallocateMib: null,
    extraArgs: ['--stable-after', '1s']
  })
  nodes.push(site)
  const proxy = await startFaultProxy({ target: { host: '127.0.0.1', port: site.p2pPort }, bitsPerSecond: mbit * 1e6 })
  const reader = await startNode(
    await consortium.member('Bench Reader', 'radiologist', [], ['--subspecialty', 'neuro']),
    { peers: [`/ip4/127.0.0.1/tcp/${proxy.port}/p2p/${site.peerId}`], preallocateMib: null }
  )
  nodes.push(reader)
  await waitFor(
    'the reader and the site to connect',
    async () => (await peersOf(reader)).some(p => p.peerId === site.peerId),
    15_000
  )
  await knowsRadiologists(site, 1, 15_000)
  const page = await signedInPage(browser, reader)

  for (const study of studies) {
    await page.goto(`${reader.http}/#/`)
    await page.reload()
    const sent = await storescu(site.dicomPort, 'RADMESH', ['+sd', '+r', join(work, `study-${studies.indexOf(study)}`)])
    if (sent.code !== 0) throw new Error(`storescu to the site failed: ${sent.stderr}`)
    const open = page.locator('tr[data-status="SCHEDULED"] a.open').first()
    await open.waitFor({ timeout: 60_000 })
    const clicked = performance.now()
    await open.click()
    await page.waitForSelector('#viewport[data-drawn]', { timeout: 60_000 })
    const ms = performance.now() - clicked
    const availability = (
      await reader.api<{ instancesLocal: number; instancesTotal: number }>(
        'GET',
        `/api/studies/${study.studyInstanceUid}/availability`
      )
    ).body
    firstImage.push({ ms, local: availability.instancesLocal, total: availability.instancesTotal })
    await waitFor(
      'the study to be complete on the reader',
      async () =>
        (await reader.api<{ complete: boolean }>('GET', `/api/studies/${study.studyInstanceUid}/availability`)).body
          .complete,
      300_000,
      200
    )
    await waitFor(
      'the viewer to list every slice',
      async () => (await page.evaluate(() => window.radmesh?.viewport.state().count)) === slices,
      30_000,
      200
    )
    for (const list of [scrollCold, scrollWarm]) {
      const seconds = await page.evaluate(async count => {
        const viewport = window.radmesh?.viewport
        if (viewport === undefined) throw new Error('no viewport')
        const started = performance.now()
        for (let i = 0; i < count; i++) {
          await viewport.show(i)
          await new Promise(resolve => requestAnimationFrame(resolve))
        }
        return (performance.now() - started) / 1000
      }, slices)
      list.push(slices / seconds)
    }
    // Finished with this case: it is released so the next round's case is the only SCHEDULED one.
    const caseId = (
      await reader.api<Array<{ caseId: string; studyInstanceUid: string }>>('GET', '/api/worklist')
    ).body.find(c => c.studyInstanceUid === study.studyInstanceUid)?.caseId
    await site.api('POST', `/api/worklist/${caseId}/cancel`, { reason: 'benchmark round done' })
  }
  await proxy.close()
} finally {
  await browser.close()
  await Promise.all(
    nodes.map(async node => {
      await node.kill()
    })
  )
}

// The conventional push over the same kind of link: the whole study to storescp, then the first slice rendered.
const push: number[] = []
const dcmtkFps: number[] = []
for (const [round, study] of studies.entries()) {
  const port = await freePort()
  const out = await fs.mkdtemp(join(work, 'storescp-'))
  const scp = spawn('storescp', ['-od', out, '-aet', 'STORESCP', String(port)], {
    env: { ...process.env, TCP_NODELAY: '1' },
    stdio: 'ignore'
  })
  const proxy = await startFaultProxy({ target: { host: '127.0.0.1', port }, bitsPerSecond: mbit * 1e6 })
  try {
    await waitFor(
      'storescp',
      async () => (await runTool('echoscu', ['-aec', 'STORESCP', '127.0.0.1', String(port)])).code === 0,
      10_000,
      100
    )
    const started = performance.now()
    const sent = await storescu(proxy.port, 'STORESCP', ['+sd', '+r', join(work, `study-${round}`)])
    if (sent.code !== 0) throw new Error(`storescu to storescp failed: ${sent.stderr}`)
    const rendered = await runTool('dcmj2pnm', ['+Wi', '1', study.files[0] as string, join(out, 'first.pgm')])
    if (rendered.code !== 0) await runTool('dcmj2pnm', ['+Wm', study.files[0] as string, join(out, 'first.pgm')])
    push.push(performance.now() - started)
    const renderStarted = performance.now()
    for (const file of study.files) await runTool('dcmj2pnm', ['+Ww', '40', '80', file, join(out, 'slice.pgm')])
    dcmtkFps.push(study.files.length / ((performance.now() - renderStarted) / 1000))
  } finally {
    await proxy.close()
    scp.kill('SIGTERM')
    await fs.rm(out, { recursive: true, force: true })
  }
}

const firstMs = median(firstImage.map(f => f.ms))
const pushMs = median(push)
process.stdout.write(`median of ${rounds} rounds\n`)
process.stdout.write(`time to first image                    ms (min-max)          radmesh speed vs this\n`)
process.stdout.write(
  `radmesh viewer, study arriving          ${firstMs.toFixed(0).padStart(6)} ` +
    `(${Math.min(...firstImage.map(f => f.ms)).toFixed(0)}-` +
    `${Math.max(...firstImage.map(f => f.ms)).toFixed(0)})      1.00x   ` +
    `local at first image: ${firstImage.map(f => `${f.local}/${f.total}`).join(', ')}\n`
)
process.stdout.write(
  `whole-study push (storescu -> storescp), then dcmj2pnm  ${pushMs.toFixed(0).padStart(6)} ` +
    `(${Math.min(...push).toFixed(0)}-${Math.max(...push).toFixed(0)})   ${(pushMs / firstMs).toFixed(1)}x\n\n`
)
process.stdout.write(`scrolling ${slices} slices once local      frames/s (min-max)    radmesh vs this\n`)
process.stdout.write(
  `radmesh viewer, first pass (decode)     ${median(scrollCold).toFixed(1).padStart(6)} ` +
    `(${Math.min(...scrollCold).toFixed(1)}-${Math.max(...scrollCold).toFixed(1)})\n`
)
process.stdout.write(
  `radmesh viewer, second pass (cached)    ${median(scrollWarm).toFixed(1).padStart(6)} ` +
    `(${Math.min(...scrollWarm).toFixed(1)}-${Math.max(...scrollWarm).toFixed(1)})\n`
)
process.stdout.write(
  `DCMTK dcmj2pnm, one slice per process   ${median(dcmtkFps).toFixed(1).padStart(6)} ` +
    `(${Math.min(...dcmtkFps).toFixed(1)}-${Math.max(...dcmtkFps).toFixed(1)})   ` +
    `first pass ${(median(scrollCold) / median(dcmtkFps)).toFixed(1)}x\n`
)
process.stdout.write('(targets: first image < 1000 ms with the study still arriving; scrolling >= 30 frames/s)\n')
await fs.rm(work, { recursive: true, force: true })
process.exit(0)

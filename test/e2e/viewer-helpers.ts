/**
 * For viewer.test.ts: the network it runs against (a site with a DICOM port, two neuro radiologists, a CT on
 * Alice's worklist), and what compares the viewer's rendering with DCMTK's.
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import type { Page } from 'playwright-core'
import * as assert from 'uvu/assert'
import { generateCt } from '../../scripts/generate-ct.ts'
import type { ScratchConsortium } from '../../scripts/lib/consortium.ts'
import { runTool, storescu } from '../../scripts/lib/dcmtk.ts'
import { connected, knowsRadiologists, p2pAddr, type StartedNode, startNode } from '../../scripts/lib/node-process.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { waitFor } from '../../scripts/lib/wait.ts'

export interface ViewerNetwork {
  site: StartedNode
  alice: StartedNode
  bob: StartedNode
  /** the CT's case */
  caseId: string
  /** the first file of the CT's first series */
  ctFirstFile: string
}

/** Starts a node that settles a study after 1 s, pushed to `started` (to be killed after the tests). */
export async function start(
  started: StartedNode[],
  home: string,
  extra: Parameters<typeof startNode>[1] = {}
): Promise<StartedNode> {
  const node = await startNode(home, { ...extra, extraArgs: ['--stable-after', '1s', ...(extra.extraArgs ?? [])] })
  started.push(node)
  return node
}

/** The grey channel of what the viewer rendered for the image on screen (before zoom), and its size. */
export async function renderedFrame(page: Page): Promise<{ width: number; height: number; grey: number[] }> {
  return await page.evaluate(() => {
    const data = window.radmesh?.viewport.frameImageData()
    if (data === undefined) throw new Error('no image rendered')
    return { width: data.width, height: data.height, grey: Array.from(data.data.filter((_, i) => i % 4 === 0)) }
  })
}

/** DCMTK's rendering of the same file at a window (PGM), as grey levels. */
export async function dcmtkRendering(file: string, window: string[]): Promise<number[]> {
  const out = join(await tempDir(), 'reference.pgm')
  const result = await runTool('dcmj2pnm', [...window, file, out])
  assert.is(result.code, 0, result.stderr)
  const bytes = await fs.readFile(out)
  const header = /^P5\s+(\d+)\s+(\d+)\s+(\d+)\s/.exec(bytes.subarray(0, 40).toString('latin1'))
  if (header === null) throw new Error('dcmj2pnm wrote no PGM')
  return Array.from(bytes.subarray(header[0].length))
}

export const maxDifference = (a: number[], b: number[]): number =>
  a.reduce((worst, v, i) => Math.max(worst, Math.abs(v - (b[i] ?? -999))), 0)

/** Whether the visible canvas shows something: more than one colour. */
export async function canvasShowsImage(page: Page): Promise<boolean> {
  return await page.evaluate(() => {
    const canvas = document.querySelector<HTMLCanvasElement>('#image')
    const context = canvas?.getContext('2d')
    if (canvas === null || canvas === undefined || context === null || context === undefined) return false
    const data = context.getImageData(0, 0, canvas.width, canvas.height).data
    const seen = new Set<number>()
    for (let i = 0; i < data.length && seen.size < 8; i += 4 * 97)
      seen.add(((data[i] as number) << 16) | ((data[i + 1] as number) << 8) | (data[i + 2] as number))
    return seen.size > 4
  })
}

/** Starts the nodes (each pushed to `started`, to be killed after), connects them, and stores the CT at the site. */
export async function startViewerNetwork(
  consortium: ScratchConsortium,
  started: StartedNode[]
): Promise<ViewerNetwork> {
  const site = await start(started, await consortium.member('Hilltop Hospital', 'site'), { dicom: true })
  const alice = await start(
    started,
    await consortium.member('Dr Alice Neuro', 'radiologist', [], ['--subspecialty', 'neuro']),
    {
      peers: [p2pAddr(site)]
    }
  )
  const bob = await start(
    started,
    await consortium.member('Dr Bob Neuro', 'radiologist', [], ['--subspecialty', 'neuro']),
    {
      peers: [p2pAddr(site), p2pAddr(alice)]
    }
  )
  await connected(site, alice)
  await connected(site, bob)
  await connected(alice, bob)
  await knowsRadiologists(site, 2, 15_000)
  const dir = await tempDir()
  const study = await generateCt({
    out: dir,
    slices: 12,
    rows: 128,
    columns: 128,
    seed: 41,
    studyDescription: 'CT HEAD STROKE PROTOCOL',
    bodyPart: 'HEAD',
    patientName: 'VIEWER^CANARY'
  })
  const ctFirstFile = study.series[0]?.files[0] ?? ''
  assert.is((await storescu(site.dicomPort, 'RADMESH', ['+sd', '+r', dir])).code, 0)
  const [entry] = await waitFor(
    "the case on Alice's worklist",
    async () => {
      const list = (await alice.api<Array<{ caseId: string }>>('GET', '/api/worklist')).body
      return list.length === 1 ? list : undefined
    },
    20_000
  )
  return { site, alice, bob, caseId: entry?.caseId ?? '', ctFirstFile }
}

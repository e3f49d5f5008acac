/**
 * For critical.test.ts and critical-viewer.test.ts: a site and a neuro reader in separate processes over real
 * libp2p, a small head CT stored at the site over DIMSE (DCMTK storescu), and its case on the reader's worklist,
 * claimed by the reader: where every critical-result test starts.
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import * as assert from 'uvu/assert'
import { generateCt } from '../../scripts/generate-ct.ts'
import type { ScratchConsortium } from '../../scripts/lib/consortium.ts'
import { storescu } from '../../scripts/lib/dcmtk.ts'
import { connected, knowsRadiologists, p2pAddr, type StartedNode, startNode } from '../../scripts/lib/node-process.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { waitFor } from '../../scripts/lib/wait.ts'

/** A critical result as `GET /api/critical` answers it. */
export interface Critical {
  id: string
  caseId: string
  level: string
  text: string
  by: string
  byName: string | null
  acknowledged: { by: string; role: string; at: string } | null
  escalations: Array<{ step: number; at: string; notify: string | null }>
  overdue: boolean
  calls: Array<{ by: string; note: string; at: string }>
}

export interface ClaimedCase {
  site: StartedNode
  reader: StartedNode
  caseId: string
}

/**
 * Starts a site (with DICOM, `routing` as its routing.json when given) and the reader Dr Alice Neuro, each
 * pushed to `started` (to be killed after the tests), stores a 4-slice head CT at the site and returns the
 * case once the reader has claimed it.
 */
export async function claimedCriticalCase(
  consortium: ScratchConsortium,
  started: StartedNode[],
  options: { routing?: unknown; seed: number }
): Promise<ClaimedCase> {
  const start = async (home: string, peers: StartedNode[], dicom: boolean): Promise<StartedNode> => {
    const node = await startNode(home, { dicom, peers: peers.map(p2pAddr), extraArgs: ['--stable-after', '1s'] })
    started.push(node)
    return node
  }
  const siteHome = await consortium.member('County Hospital', 'site')
  if (options.routing !== undefined) {
    await fs.writeFile(join(siteHome, 'routing.json'), JSON.stringify(options.routing))
  }
  const readerHome = await consortium.member('Dr Alice Neuro', 'radiologist', [], ['--subspecialty', 'neuro'])
  const site = await start(siteHome, [], true)
  const reader = await start(readerHome, [site], false)
  await connected(site, reader)
  await knowsRadiologists(site, 1, 15_000)
  const dir = await tempDir()
  await generateCt({
    out: dir,
    slices: 4,
    series: 1,
    rows: 32,
    columns: 32,
    seed: options.seed,
    studyDescription: 'CT HEAD STROKE',
    bodyPart: 'HEAD'
  })
  const sent = await storescu(site.dicomPort, 'RADMESH', ['+sd', '+r', dir])
  assert.is(sent.code, 0, sent.stderr)
  const caseId = await waitFor(
    "the case on the reader's worklist",
    async () => (await reader.api<Array<{ caseId: string }>>('GET', '/api/worklist')).body[0]?.caseId,
    20_000
  )
  assert.is((await reader.api('POST', `/api/worklist/${caseId}/claim`)).status, 200)
  return { site, reader, caseId }
}

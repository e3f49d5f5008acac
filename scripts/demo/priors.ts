/**
 * The site's PACS in the demo: Debian's Orthanc, holding an earlier head CT of the stroke patient. The site's
 * node names it (`--pacs`), finds the prior when the stroke case is published, retrieves it (C-GET) and shares
 * it with the case's readers, who fetch it after the case's images; the report compares with it. Without Orthanc
 * the step is skipped, saying why (the demo needs nothing beyond `npm ci`).
 */
import { existsSync, promises as fs } from 'node:fs'
import { join } from 'node:path'
import type { CasePriors } from '../../protocol/api/priors.ts'
import { generateCt } from '../generate-ct.ts'
import { type OrthancServer, startOrthanc } from '../lib/orthanc.ts'
import { AE_TITLE, type Running, say, until } from './common.ts'

/** The stroke patient, the same in every run, so the prior (the same study every run) is theirs. */
export const STROKE_PATIENT_ID = 'DEMO-STROKE-1'
const ORTHANC = ['/usr/sbin/Orthanc', '/usr/bin/Orthanc']

/** Orthanc as the site's PACS, knowing the site's AE title, or why there is none. */
export async function startPacs(): Promise<OrthancServer | string> {
  if (!ORTHANC.some(path => existsSync(path))) return 'Orthanc is not installed (apt install orthanc)'
  try {
    // C-GET: the PACS answers on the node's own association, so the port given for the node is never used.
    return await startOrthanc({ modalities: { radmesh: [AE_TITLE, '127.0.0.1', 104] } })
  } catch (error) {
    return `Orthanc did not start: ${error instanceof Error ? error.message : String(error)}`
  }
}

/** The site's `--pacs` for it (none without it). */
export const pacsArgs = (pacs: OrthancServer | string): string[] =>
  typeof pacs === 'string' ? [] : ['--pacs', `ORTHANC@127.0.0.1:${pacs.dicomPort}`]

/** Puts the stroke patient's head CT of January 2023 into the PACS. */
export async function loadPrior(pacs: OrthancServer | string, incoming: string): Promise<void> {
  if (typeof pacs === 'string') return
  const prior = await generateCt({
    out: join(incoming, 'pacs-prior'),
    slices: 20,
    rows: 256,
    columns: 256,
    patientName: 'DEMO^STROKE',
    patientId: STROKE_PATIENT_ID,
    studyDescription: 'CT HEAD',
    bodyPart: 'HEAD',
    studyDate: new Date(Date.UTC(2023, 0, 15, 9, 30)),
    seed: 1
  })
  for (const file of prior.files) await pacs.request('POST', '/instances', await fs.readFile(file))
  say(`the hospital's PACS (Orthanc, ORTHANC@127.0.0.1:${pacs.dicomPort}) holds the patient's head CT of 2023-01-15`)
}

/**
 * Waits until the reader has the case's prior on its node, says so, and returns the COMPARISON text that names
 * it ('None.' without a PACS).
 */
export async function priorAtReader(pacs: OrthancServer | string, reader: Running, caseId: string): Promise<string> {
  if (typeof pacs === 'string') {
    say(`priors step skipped: ${pacs}; the site runs without --pacs`)
    return 'None.'
  }
  const answer = await until(`the prior on ${reader.member.name}'s node`, async () => {
    const { body } = await reader.api<CasePriors>('GET', `/api/cases/${caseId}/priors`)
    return body.priors.length > 0 && body.priors.every(p => p.local) ? body : undefined
  })
  const prior = answer.priors[0] as CasePriors['priors'][number]
  const date = `${prior.studyDate.slice(0, 4)}-${prior.studyDate.slice(4, 6)}-${prior.studyDate.slice(6)}`
  say(
    `prior found in the PACS (C-FIND by patient), retrieved by C-GET and shared as a prior of the case: ` +
      `${reader.member.name} holds ${prior.studyDescription} of ${date} (${prior.instances} images) ` +
      'beside the new study'
  )
  return `Compared with ${prior.studyDescription} of ${date}: new since then.`
}

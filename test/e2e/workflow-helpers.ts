/**
 * For workflow.test.ts and workflow-waiting.test.ts: the worklist and report as the API returns them, and the
 * checks of what the site makes of a FINAL report (a DICOM SR, a FHIR report).
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import * as assert from 'uvu/assert'
import { parseMultipartRelated } from '../../protocol/dicomweb/multipart.ts'
import { runTool } from '../../scripts/lib/dcmtk.ts'
import type { StartedNode } from '../../scripts/lib/node-process.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { waitFor } from '../../scripts/lib/wait.ts'

export interface Entry {
  caseId: string
  studyInstanceUid: string
  site: string
  priority: string
  subspecialty: string
  status: string
  claimedBy: string | null
  createdAt: string
  dueAt: string
  claimedAt: string | null
  preliminaryAt: string | null
  finalAt: string | null
  consultants: string[]
}
export interface Report {
  status: string
  sections: Record<string, string>
  authors: Array<{ peerId: string }>
  signatures: Array<{ peerId: string; status: string; verified: boolean }>
  addenda: Array<{ text: string }>
}

export async function worklist(node: StartedNode): Promise<Entry[]> {
  const { status, body } = await node.api<Entry[]>('GET', '/api/worklist')
  assert.is(status, 200)
  return body
}

export async function report(node: StartedNode, caseId: string): Promise<Report> {
  const { status, body } = await node.api<Report>('GET', `/api/cases/${caseId}/report`)
  assert.is(status, 200, JSON.stringify(body))
  return body
}

/** The report's SR in the site's archive, retrieved and accepted by dciodvfy: its series. */
export async function srAtSite(site: StartedNode, studyUid: string): Promise<string> {
  const sr = await waitFor(
    "the SR in the site's archive",
    async () => {
      const response = await site.fetch(`/dicom-web/studies/${studyUid}/series?Modality=SR`, {
        headers: { accept: 'application/dicom+json' }
      })
      if (response.status !== 200) return undefined
      return ((await response.json()) as Array<Record<string, { Value?: string[] }>>)[0]
    },
    15_000
  )
  const seriesUid = sr?.['0020000E']?.Value?.[0] as string
  const instances = (await (
    await site.fetch(`/dicom-web/studies/${studyUid}/series/${seriesUid}/instances`, {
      headers: { accept: 'application/dicom+json' }
    })
  ).json()) as Array<Record<string, { Value?: string[] }>>
  const sopUid = instances[0]?.['00080018']?.Value?.[0] as string
  const retrieved = await site.fetch(`/dicom-web/studies/${studyUid}/series/${seriesUid}/instances/${sopUid}`, {
    headers: { accept: 'multipart/related; type="application/dicom"' }
  })
  assert.is(retrieved.status, 200)
  const [part] = parseMultipartRelated(
    new Uint8Array(await retrieved.arrayBuffer()),
    retrieved.headers.get('content-type') ?? ''
  )
  const srPath = join(await tempDir(), 'report.dcm')
  await fs.writeFile(srPath, (part as { body: Uint8Array }).body)
  const verified = await runTool('dciodvfy', [srPath])
  const errors = `${verified.stdout}\n${verified.stderr}`.split('\n').filter(line => /^Error/.test(line))
  assert.equal(errors, [], `dciodvfy: ${verified.stderr}`)
  return seriesUid
}

/** The site serves the FINAL report as a FHIR DiagnosticReport. */
export async function assertFhirReport(site: StartedNode, caseId: string, studyUid: string): Promise<void> {
  const fhir = await site.api<{
    resourceType: string
    status: string
    conclusion: string
    imagingStudy: Array<{ identifier?: { value: string } }>
    resultsInterpreter: Array<{ display: string }>
    presentedForm: Array<{ data: string }>
  }>('GET', `/api/cases/${caseId}/report/fhir`)
  assert.is(fhir.status, 200, JSON.stringify(fhir.body))
  assert.is(fhir.body.resourceType, 'DiagnosticReport')
  assert.is(fhir.body.status, 'final')
  assert.is(fhir.body.conclusion, 'Acute right MCA infarct. No haemorrhage.')
  assert.is(fhir.body.imagingStudy[0]?.identifier?.value, `urn:oid:${studyUid}`)
  assert.ok(fhir.body.resultsInterpreter.some(r => r.display === 'Dr Alice Neuro'))
  assert.ok(
    Buffer.from(fhir.body.presentedForm[0]?.data ?? '', 'base64')
      .toString('utf8')
      .includes('Hyperdense right MCA')
  )
}

/** Malformed report edits and API calls are refused, each with its status and error code. */
export async function assertBadRequestsRefused(alice: StartedNode, caseId: string): Promise<void> {
  for (const bad of [
    { sections: { findings: 'x'.repeat(70_000) } },
    { sections: { opinion: 'x' } },
    { sections: 'findings' }
  ]) {
    const refused = await alice.api<{ error: { code: string } }>('PUT', `/api/cases/${caseId}/report`, bad)
    assert.equal(
      [refused.status, refused.body.error.code],
      [400, 'RADMESH_BAD_REQUEST'],
      JSON.stringify(bad).slice(0, 60)
    )
  }
  for (const [method, path, body, status, code] of [
    ['POST', '/api/worklist/not-a-case/claim', undefined, 400, 'RADMESH_BAD_REQUEST'],
    ['POST', `/api/worklist/${'0'.repeat(24)}/claim`, undefined, 404, 'RADMESH_NOT_FOUND'],
    ['POST', `/api/cases/${caseId}/report/sign`, { status: 'SIGNED' }, 400, 'RADMESH_BAD_REQUEST'],
    ['PUT', '/api/duty', { shifts: [{ start: 'tonight', end: 'tomorrow' }] }, 400, 'RADMESH_BAD_REQUEST'],
    ['POST', `/api/cases/${caseId}/consult`, { peerId: 'nobody' }, 400, 'RADMESH_NOT_A_MEMBER']
  ] as const) {
    const answer = await alice.api<{ error: { code: string } }>(method, path, body)
    assert.equal([answer.status, answer.body.error?.code], [status, code], `${method} ${path}`)
  }
}

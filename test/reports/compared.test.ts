/**
 * The priors a report compared with: those its COMPARISON section names by date or accession number, and no
 * other; in the SR as Pertinent Other Evidence (dciodvfy still finds no error), in the FHIR report as R5
 * supportingInfo of type comparison.
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { type DicomJsonDataset, instanceToDicomJson } from '../../node/dicom/json.ts'
import { comparedPriors, type ReportPrior } from '../../node/reports/compared.ts'
import { diagnosticReport, SUPPORTING_INFO_EXTENSION } from '../../node/reports/fhir.ts'
import { basicTextSr, type FinalReport, reportUid, type StudyForReport } from '../../node/reports/sr.ts'
import { runTool } from '../../scripts/lib/dcmtk.ts'
import { tempDir } from '../../scripts/lib/temp.ts'

const CT = '1.2.840.10008.5.1.4.1.1.2'
const prior = (uid: string, date: string, accession = ''): ReportPrior => ({
  studyUid: uid,
  studyDate: date,
  studyDescription: 'CT HEAD',
  accessionNumber: accession
})

test('the priors the comparison names by date (either form) or accession number, and only those', () => {
  const priors = [prior('1.1', '20250301'), prior('1.2', '20230115', 'ACC-77'), prior('1.3', '20240101', 'A12')]
  const uids = (text: string): string[] => comparedPriors(text, priors).map(p => p.studyUid)
  assert.equal(uids('Compared with CT HEAD of 2025-03-01.'), ['1.1'])
  assert.equal(uids('CT of 20230115 and of 2025-03-01'), ['1.1', '1.2'])
  assert.equal(uids('Prior study acc-77 reviewed.'), ['1.2'])
  assert.equal(uids('None.'), [])
  // A date or accession inside a longer number is not it.
  assert.equal(uids('Ref 120250301 and XA123'), [])
})

const studyOf = (uid: string, date: string, description: string): StudyForReport => ({
  studyInstanceUid: uid,
  attributes: {
    '00100010': 'DOE^JANE',
    '00100020': 'MRN-1',
    '00080020': date,
    '00081030': description
  },
  instances: [{ seriesInstanceUid: `${uid}.1`, sopClassUid: CT, sopInstanceUid: `${uid}.1.1` }]
})

const current = studyOf('1.2.826.0.1.3680043.8.498.90', '20261201', 'CT HEAD STROKE')
const compared = studyOf('1.2.826.0.1.3680043.8.498.91', '20250301', 'CT HEAD')
const report: FinalReport = {
  caseId: 'abcdef0123456789abcdef01',
  status: 'FINAL',
  sections: {
    indication: '',
    technique: '',
    comparison: 'Compared with CT HEAD of 2025-03-01.',
    findings: 'New hypodensity.',
    impression: 'Infarct.'
  },
  signers: [{ peerId: '12D3KooWReader', name: 'Dr Ada Neuro', status: 'FINAL', signedAt: '2026-12-01T03:40:00.000Z' }],
  addenda: [],
  finalAt: '2026-12-01T03:40:00.000Z',
  institutionName: 'Priors General',
  compared: [compared]
}

test('the SR lists the compared study as Pertinent Other Evidence, and dciodvfy finds no error', async () => {
  const bytes = basicTextSr(report, current, {
    seriesInstanceUid: reportUid(report.caseId, 'series'),
    sopInstanceUid: reportUid(report.caseId, 'instance-0'),
    instanceNumber: 1
  })
  const ds = instanceToDicomJson(bytes, tag => `bulk/${tag}`)
  const items = (d: DicomJsonDataset | undefined, tag: string): DicomJsonDataset[] =>
    (d?.[tag]?.Value ?? []) as DicomJsonDataset[]
  const other = items(ds, '0040A385')
  assert.is(other.length, 1)
  assert.equal(other[0]?.['0020000D']?.Value, [compared.studyInstanceUid])
  const sop = items(items(other[0], '00081115')[0], '00081199')[0]
  assert.equal(sop?.['00081155']?.Value, [`${compared.studyInstanceUid}.1.1`])
  assert.equal(items(ds, '0040A375')[0]?.['0020000D']?.Value, [current.studyInstanceUid])
  const path = join(await tempDir(), 'report.dcm')
  await fs.writeFile(path, bytes)
  const verified = await runTool('dciodvfy', [path])
  const errors = `${verified.stdout}\n${verified.stderr}`.split('\n').filter(line => /^Error/.test(line))
  assert.equal(errors, [], verified.stderr)
  // Without compared studies there is no such sequence (type 1C: absent, not empty).
  const plain = basicTextSr({ ...report, compared: [] }, current, {
    seriesInstanceUid: reportUid(report.caseId, 'series'),
    sopInstanceUid: reportUid(report.caseId, 'instance-0'),
    instanceNumber: 1
  })
  assert.is(instanceToDicomJson(plain, tag => tag)['0040A385'], undefined)
})

test('the FHIR report names the compared study as supporting information of type comparison', () => {
  const resource = diagnosticReport(report, current) as { extension?: Array<Record<string, unknown>> }
  assert.equal(resource.extension, [
    {
      url: SUPPORTING_INFO_EXTENSION,
      extension: [
        { url: 'type', valueCodeableConcept: { text: 'comparison' } },
        {
          url: 'reference',
          valueReference: {
            type: 'ImagingStudy',
            identifier: { system: 'urn:dicom:uid', value: `urn:oid:${compared.studyInstanceUid}` },
            display: 'CT HEAD of 2025-03-01'
          }
        }
      ]
    }
  ])
  assert.is((diagnosticReport({ ...report, compared: [] }, current) as { extension?: unknown }).extension, undefined)
})

test.run()

/**
 * The report as a DICOM Basic Text SR: dicom3tools' dciodvfy finds no error and no warning in it, DCMTK's
 * dcmdump and dsrdump (which checks the SR content tree against the Basic Text SR constraints) read it; it
 * belongs to the read study, is verified by the FINAL signer, carries every non-empty section under its
 * TID 2000 heading and every addendum with its own signer, lists the study's images as evidence, has no
 * executable preamble, and is the same bytes for the same report.
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { RadmeshError } from '../../node/errors.ts'
import { type DicomJsonDataset, instanceToDicomJson } from '../../node/dicom/json.ts'
import { parsePart10 } from '../../node/dicom/part10.ts'
import { isStrictUid } from '../../node/dicom/uids.ts'
import {
  BASIC_TEXT_SR,
  basicTextSr,
  type FinalReport,
  reportUid,
  type SrIdentity,
  type StudyForReport
} from '../../node/reports/sr.ts'
import { runTool } from '../../scripts/lib/dcmtk.ts'
import { tempDir } from '../../scripts/lib/temp.ts'

const STUDY_UID = '1.2.826.0.1.3680043.8.498.55'
const CT = '1.2.840.10008.5.1.4.1.1.2'
const study: StudyForReport = {
  studyInstanceUid: STUDY_UID,
  attributes: {
    '00100010': 'MÜLLER^JOSÉ',
    '00100020': 'MRN-77',
    '00100030': '19600101',
    '00100040': 'M',
    '00080020': '20261128',
    '00080030': '031500',
    '00080050': 'ACC-1',
    '00080090': 'REFERRER^RITA',
    '00081030': 'CT HEAD STROKE PROTOCOL',
    '00200010': '12',
    '00080005': 'ISO_IR 100'
  },
  // Not in UID order, and one instance twice: the evidence must not depend on how the archive lists them.
  instances: [
    { seriesInstanceUid: `${STUDY_UID}.2`, sopClassUid: CT, sopInstanceUid: `${STUDY_UID}.2.1` },
    { seriesInstanceUid: `${STUDY_UID}.1`, sopClassUid: CT, sopInstanceUid: `${STUDY_UID}.1.2` },
    { seriesInstanceUid: `${STUDY_UID}.1`, sopClassUid: CT, sopInstanceUid: `${STUDY_UID}.1.1` },
    { seriesInstanceUid: `${STUDY_UID}.1`, sopClassUid: CT, sopInstanceUid: `${STUDY_UID}.1.2` }
  ]
}
const report: FinalReport = {
  caseId: '0123456789abcdef01234567',
  status: 'AMENDED',
  sections: {
    indication: 'Sudden left weakness.',
    technique: 'Non-contrast CT head.',
    comparison: '',
    findings: 'Hyperdense right MCA.\nFrüh ischämisch, 脳梗塞.',
    impression: 'Acute right MCA infarct.'
  },
  signers: [
    { peerId: '12D3KooWReader', name: 'Dr Ada Neuro', status: 'FINAL', signedAt: '2026-11-28T03:40:00.000Z' },
    { peerId: '12D3KooWResident', name: 'Dr Ben Junior', status: 'PRELIMINARY', signedAt: '2026-11-28T03:30:00.000Z' }
  ],
  addenda: [{ text: 'CTA: right M1 occlusion.', signerName: 'Dr Cy Vascular', signedAt: '2026-11-28T04:05:00.000Z' }],
  finalAt: '2026-11-28T03:40:00.000Z',
  institutionName: 'Riverside Community Hospital'
}
const ids: SrIdentity = {
  seriesInstanceUid: reportUid(report.caseId, 'series'),
  sopInstanceUid: reportUid(report.caseId, 'instance-1'),
  instanceNumber: 2,
  predecessor: {
    seriesInstanceUid: reportUid(report.caseId, 'series'),
    sopInstanceUid: reportUid(report.caseId, 'instance-0')
  }
}

async function written(bytes: Uint8Array): Promise<string> {
  const path = join(await tempDir(), 'report.dcm')
  await fs.writeFile(path, bytes)
  return path
}

const lines = (text: string, start: RegExp): string[] => text.split('\n').filter(line => start.test(line))

// Reading the written file back through radmesh's own DICOM JSON reader (the one WADO-RS answers with).
const json = (bytes: Uint8Array): DicomJsonDataset => instanceToDicomJson(bytes, tag => `bulk/${tag}`)
const items = (ds: DicomJsonDataset | undefined, tag: string): DicomJsonDataset[] =>
  (ds?.[tag]?.Value ?? []) as DicomJsonDataset[]
const value = (ds: DicomJsonDataset | undefined, tag: string): unknown => ds?.[tag]?.Value?.[0]
const concept = (ds: DicomJsonDataset | undefined): string => {
  const c = items(ds, '0040A043')[0]
  return `${String(value(c, '00080100'))},${String(value(c, '00080102'))},${String(value(c, '00080104'))}`
}
const name = (ds: DicomJsonDataset | undefined, tag: string): unknown =>
  (value(ds, tag) as { Alphabetic?: string } | undefined)?.Alphabetic

test('dciodvfy finds no error and no warning; dcmdump and dsrdump read the whole report', async () => {
  const path = await written(basicTextSr(report, study, ids))
  const verified = await runTool('dciodvfy', [path])
  const output = `${verified.stdout}\n${verified.stderr}`
  assert.match(output, /BasicTextSR/, `dciodvfy recognised the IOD: ${output}`)
  assert.equal(lines(output, /^Error/), [], output)
  // None today. A known one would be listed here with its reason rather than the check loosened.
  assert.equal(lines(output, /^Warning/), [], output)

  const dumped = await runTool('dcmdump', ['+U8', path])
  assert.is(dumped.code, 0, dumped.stderr)
  assert.match(dumped.stdout, /\(0040,a493\) CS \[VERIFIED\]/)
  assert.match(dumped.stdout, /Acute right MCA infarct\./)
  assert.match(dumped.stdout, /Früh ischämisch, 脳梗塞\./)

  // dsrdump builds the content tree and checks each relationship against what Basic Text SR allows
  // (errors as "E:"). Its "W:" lines are DCMTK 3.6.7's own limits, not the file's: its VR checker has no
  // ISO_IR 192, and its DT pattern rejects the UTC offset "+0000", which PS3.5 6.2 allows.
  const tree = await runTool('dsrdump', ['+U8', path])
  assert.is(tree.code, 0, tree.stderr)
  assert.equal(lines(`${tree.stdout}\n${tree.stderr}`, /^E:/), [], tree.stderr)
  assert.match(tree.stdout, /^Basic Text SR Document/m)
  assert.match(tree.stdout, /<contains TEXT:\(,,"Impression"\)="Acute right MCA infarct\.">/)
  assert.match(tree.stdout, /<contains CONTAINER:\(,,"Addendum"\)=SEPARATE> \{2026-11-28 04:05:00 \+00:00\}/)
})

test('the dciodvfy check can fail: the same SR without its Verification Flag is an error', async () => {
  const path = await written(basicTextSr(report, study, ids))
  const erased = await runTool('dcmodify', ['-nb', '-ea', '(0040,a493)', path])
  assert.is(erased.code, 0, erased.stderr)
  const verified = await runTool('dciodvfy', [path])
  assert.ok(
    lines(`${verified.stdout}\n${verified.stderr}`, /^Error/).some(line => /Verification ?Flag/i.test(line)),
    verified.stderr
  )
})

test('it is a verified, complete Basic Text SR in the read study, with the patient copied from it', () => {
  const bytes = basicTextSr(report, study, ids)
  const parsed = parsePart10(bytes)
  assert.is(parsed.sopClassUid, BASIC_TEXT_SR)
  assert.is(parsed.sopInstanceUid, ids.sopInstanceUid)
  assert.is(parsed.studyInstanceUid, STUDY_UID)
  assert.is(parsed.seriesInstanceUid, ids.seriesInstanceUid)
  assert.is(parsed.attributes['00080060'], 'SR')
  assert.is(parsed.attributes['00100010'], 'MÜLLER^JOSÉ')
  assert.is(parsed.attributes['00100020'], 'MRN-77')
  assert.is(parsed.attributes['00080050'], 'ACC-1')
  assert.is(parsed.attributes['00200013'], '2')
  const ds = json(bytes)
  assert.is(value(ds, '00080005'), 'ISO_IR 192', 'UTF-8, whatever the study was written in')
  assert.is(value(ds, '0040A493'), 'VERIFIED')
  assert.is(value(ds, '0040A491'), 'COMPLETE')
  assert.is(value(ds, '00080070'), 'radmesh')
  assert.is(value(ds, '00080023'), '20261128')
  assert.is(value(ds, '00080033'), '034000.000')
  assert.equal(items(ds, '00081111'), [], 'Referenced Performed Procedure Step Sequence: present and empty')
  assert.equal(items(ds, '0040A372'), [], 'Performed Procedure Code Sequence: present and empty')
  const verifiers = items(ds, '0040A073')
  assert.is(verifiers.length, 1, 'the FINAL signer only, not the PRELIMINARY one')
  assert.is(name(verifiers[0], '0040A075'), 'Dr Ada Neuro^')
  assert.is(value(verifiers[0], '0040A027'), 'Riverside Community Hospital')
  assert.is(value(verifiers[0], '0040A030'), '20261128034000.000+0000')
  const predecessor = items(items(items(ds, '0040A360')[0], '00081115')[0], '00081199')[0]
  assert.is(value(predecessor, '00081155'), ids.predecessor?.sopInstanceUid)
})

test(
  'the content tree is TID 2000: title, language, observer, ' + 'a heading per non-empty section, then each addendum',
  () => {
    const ds = json(basicTextSr(report, study, ids))
    assert.is(value(ds, '0040A040'), 'CONTAINER')
    assert.is(concept(ds), '18748-4,LN,Diagnostic Imaging Report')
    assert.is(value(items(ds, '0040A504')[0], '0040DB00'), '2000')
    const children = items(ds, '0040A730')
    const summary = children.map(c => `${String(value(c, '0040A010'))} ${String(value(c, '0040A040'))} ${concept(c)}`)
    assert.equal(
      summary,
      [
        'HAS CONCEPT MOD CODE 121049,DCM,Language of Content Item and Descendants',
        'HAS OBS CONTEXT PNAME 121008,DCM,Person Observer Name',
        'CONTAINS CONTAINER 18785-6,LN,Indications for Procedure',
        'CONTAINS CONTAINER 55111-9,LN,Current Procedure Descriptions',
        'CONTAINS CONTAINER 59776-5,LN,Findings',
        'CONTAINS CONTAINER 19005-8,LN,Impressions',
        'CONTAINS CONTAINER 55107-7,LN,Addendum'
      ],
      'the empty comparison is left out'
    )
    const textOf = (heading: DicomJsonDataset | undefined): string[] =>
      items(heading, '0040A730')
        .filter(c => value(c, '0040A040') === 'TEXT')
        .map(c => `${concept(c)}: ${String(value(c, '0040A160'))}`)
    assert.equal(textOf(children[4]), ['121071,DCM,Finding: Hyperdense right MCA.\nFrüh ischämisch, 脳梗塞.'])
    assert.equal(textOf(children[5]), ['121073,DCM,Impression: Acute right MCA infarct.'])
    const addendum = children[6]
    assert.equal(textOf(addendum), ['121106,DCM,Comment: CTA: right M1 occlusion.'])
    assert.is(value(addendum, '0040A032'), '20261128040500.000+0000', 'the addendum is dated by its own signature')
    const addendumObserver = items(addendum, '0040A730')[0]
    assert.is(value(addendumObserver, '0040A010'), 'HAS OBS CONTEXT')
    assert.is(name(addendumObserver, '0040A123'), 'Dr Cy Vascular^')
    assert.equal(
      items(children[0], '0040A168').map(
        c => `${String(value(c, '00080100'))},${String(value(c, '00080102'))},${String(value(c, '00080104'))}`
      ),
      ['en,RFC5646,English']
    )
  }
)

test("the language is the report's when it names one (TID 1204), English otherwise", () => {
  const language = (r: FinalReport): unknown[] =>
    items(items(json(basicTextSr(r, study, ids)), '0040A730')[0], '0040A168').map(
      c => `${String(value(c, '00080100'))},${String(value(c, '00080102'))},${String(value(c, '00080104'))}`
    )
  assert.equal(language(report), ['en,RFC5646,English'])
  assert.equal(language({ ...report, language: 'de' }), ['de,RFC5646,German'])
})

test('the evidence lists every instance of the study once, by series, in UID order whatever the input order', () => {
  const ds = json(basicTextSr(report, study, ids))
  const evidence = items(ds, '0040A375')
  assert.is(evidence.length, 1)
  assert.is(value(evidence[0], '0020000D'), STUDY_UID)
  const listed = items(evidence[0], '00081115').map(series => ({
    series: value(series, '0020000E'),
    instances: items(series, '00081199').map(i => `${String(value(i, '00081150'))} ${String(value(i, '00081155'))}`)
  }))
  assert.equal(listed, [
    { series: `${STUDY_UID}.1`, instances: [`${CT} ${STUDY_UID}.1.1`, `${CT} ${STUDY_UID}.1.2`] },
    { series: `${STUDY_UID}.2`, instances: [`${CT} ${STUDY_UID}.2.1`] }
  ])
  const reversed = { ...study, instances: [...study.instances].reverse() }
  assert.equal(Buffer.from(basicTextSr(report, reversed, ids)), Buffer.from(basicTextSr(report, study, ids)))
  assert.not.ok(
    '0040A375' in json(basicTextSr(report, { ...study, instances: [] }, ids)),
    'no evidence, no (type 1C) sequence'
  )
})

test('no executable preamble, and the same input gives the same bytes', () => {
  const bytes = basicTextSr(report, study, ids)
  assert.ok(bytes.subarray(0, 128).every(b => b === 0))
  assert.is(Buffer.from(bytes).toString('latin1', 128, 132), 'DICM')
  assert.equal(
    Buffer.from(basicTextSr(structuredClone(report), structuredClone(study), { ...ids })),
    Buffer.from(bytes)
  )
  assert.not.equal(
    Buffer.from(basicTextSr({ ...report, sections: { ...report.sections, impression: 'Other.' } }, study, ids)),
    Buffer.from(bytes)
  )
})

test(
  'an all-ASCII report declares no character set; the ' + 'patient module is there even when the study has none of it',
  async () => {
    const ascii: FinalReport = { ...report, sections: { ...report.sections, findings: 'Hyperdense right MCA.' } }
    const bare: StudyForReport = { studyInstanceUid: STUDY_UID, attributes: {}, instances: [] }
    const bytes = basicTextSr(ascii, bare, ids)
    const ds = json(bytes)
    assert.not.ok('00080005' in ds)
    for (const tag of [
      '00100010',
      '00100020',
      '00100030',
      '00100040',
      '00080020',
      '00080030',
      '00080090',
      '00200010',
      '00080050'
    ]) {
      assert.ok(tag in ds, `type 2 ${tag} present`)
      assert.is(ds[tag]?.Value, undefined, `type 2 ${tag} empty`)
    }
    const verified = await runTool('dciodvfy', [await written(bytes)])
    assert.equal(lines(`${verified.stdout}\n${verified.stderr}`, /^Error/), [], verified.stderr)
  }
)

test(
  'study attributes longer than their VR allows (a crafted ' +
    'study) are cut to fit: the SR is still written and valid',
  async () => {
    const crafted: StudyForReport = {
      studyInstanceUid: STUDY_UID,
      attributes: {
        '00100010': 'X'.repeat(60_000),
        '00100020': Array.from({ length: 20_000 }, (_, i) => `ID${i}`),
        '00081030': 'D'.repeat(65_000)
      },
      instances: []
    }
    const bytes = basicTextSr(report, crafted, ids)
    const ds = json(bytes)
    assert.is(String(name(ds, '00100010')).length, 64)
    assert.equal(ds['00100020']?.Value, ['ID0'], 'one value where the attribute has one')
    const verified = await runTool('dciodvfy', [await written(bytes)])
    assert.equal(lines(`${verified.stdout}\n${verified.stderr}`, /^Error/), [], verified.stderr)
  }
)

test(
  'a report without a FINAL signer, with a time that is not ISO ' +
    '8601 or a language that is not BCP 47, is refused as a bug',
  () => {
    const noFinal: FinalReport = { ...report, signers: report.signers.filter(s => s.status !== 'FINAL') }
    assert.throws(
      () => basicTextSr(noFinal, study, ids),
      (e: unknown) => e instanceof RadmeshError && e.code === 'RADMESH_INTERNAL'
    )
    assert.throws(
      () => basicTextSr({ ...report, finalAt: '28/11/2026 03:40' }, study, ids),
      (e: unknown) => e instanceof RadmeshError && e.code === 'RADMESH_INTERNAL'
    )
    assert.throws(
      () => basicTextSr({ ...report, finalAt: '2026-13-28T03:40:00Z' }, study, ids),
      (e: unknown) => e instanceof RadmeshError
    )
    assert.throws(
      () => basicTextSr({ ...report, language: 'not a language' }, study, ids),
      (e: unknown) => e instanceof RadmeshError && e.code === 'RADMESH_INTERNAL'
    )
  }
)

test('report UIDs are valid UIDs of at most 64 characters, stable per case and purpose', () => {
  const uid = reportUid(report.caseId, 'instance')
  assert.ok(isStrictUid(uid), uid)
  assert.match(uid, /^2\.25\.(0|[1-9][0-9]*)$/)
  assert.ok(uid.length <= 64)
  assert.is(reportUid(report.caseId, 'instance'), uid)
  assert.is.not(reportUid(report.caseId, 'series'), uid)
  assert.is.not(reportUid('fedcba9876543210fedcba98', 'instance'), uid)
  // The 2.25 form is the decimal of 128 bits: never above 2^128 - 1 (39 digits, 44 characters in all).
  for (let i = 0; i < 200; i++) {
    const each = reportUid(`case-${i}`, 'instance')
    assert.ok(isStrictUid(each) && BigInt(each.slice(5)) < 2n ** 128n, each)
  }
})

test.run()

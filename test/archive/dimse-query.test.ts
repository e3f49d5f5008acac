/**
 * The archive as a Query/Retrieve SCP sees it: C-FIND identifiers matched at each level (the keys of lower
 * levels ignored, unsupported keys returned empty), the unique keys added, the bounds, the instances a retrieve
 * names with their data sets as stored, the audit records (keys, never values; 110106 per study), and sequence
 * matching on the sequences the index keeps (any item matching every item key; the matching items returned).
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { InstanceRecord, SeriesRecord, StudyRecord } from '../../node/archive/archive.ts'
import { DimseQuery } from '../../node/archive/dimse-query.ts'
import type { AuditEntry } from '../../node/audit/log.ts'
import type { Identifier } from '../../node/dicom/identifier.ts'
import type { QueryLevel, QueryRequest } from '../../node/dicom/scp.ts'

const CT = '1.2.840.10008.5.1.4.1.1.2'
const EXPLICIT = '1.2.840.10008.1.2.1'

const PROCEDURE_CODES = '00081032'
const REQUEST_ATTRIBUTES = '00400275'
const code = (value: string, meaning: string) => ({ '00080100': value, '00080102': 'RADMESH', '00080104': meaning })
const PROCEDURES: Record<string, StudyRecord['sequences']> = {
  '1.1': { [PROCEDURE_CODES]: [code('CTHEAD', 'CT head'), code('CTNECK', 'CT neck')] },
  '1.2': { [PROCEDURE_CODES]: [code('CTCHEST', 'CT chest')] }
}
const study = (uid: string, name: string, id: string, date: string): StudyRecord => ({
  studyUid: uid,
  attributes: { '00100010': name, '00100020': id, '00080020': date, '00080030': '101500', '0020000D': uid },
  ...(PROCEDURES[uid] === undefined ? {} : { sequences: PROCEDURES[uid] }),
  modalities: ['CT'],
  seriesCount: 1,
  instanceCount: 2,
  bytes: 0,
  createdAt: '',
  updatedAt: ''
})
const STUDIES = [study('1.1', 'DOE^JOHN', 'P1', '20240105'), study('1.2', 'DOE^JANE', 'P2', '20240320')]
const series = (studyUid: string): SeriesRecord => ({
  studyUid,
  seriesUid: `${studyUid}.1`,
  attributes: { '00080060': 'CT', '0020000E': `${studyUid}.1` },
  ...(studyUid === '1.2'
    ? { sequences: { [REQUEST_ATTRIBUTES]: [{ '00401001': 'RP77', '00400009': ['SPS7', 'SPS8'] }] } }
    : {}),
  instanceCount: 2,
  bytes: 0,
  updatedAt: ''
})
const FILE = Buffer.concat([Buffer.alloc(140, 0xaa), Buffer.from('DATASET')])
const instance = (studyUid: string, n: number): InstanceRecord =>
  ({
    studyUid,
    seriesUid: `${studyUid}.1`,
    sopUid: `${studyUid}.1.${n}`,
    sopClassUid: CT,
    transferSyntaxUid: EXPLICIT,
    datasetOffset: 140,
    attributes: { '00080018': `${studyUid}.1.${n}`, '00200013': String(n) }
  }) as unknown as InstanceRecord

function provider(destinations = new Map()) {
  const entries: AuditEntry[] = []
  const query = new DimseQuery({
    archive: {
      studies: async function* () {
        yield* STUDIES
      },
      seriesOf: async function* (uid: string) {
        yield series(uid)
      },
      instancesOf: async function* (uid: string) {
        yield instance(uid, 1)
        yield instance(uid, 2)
      },
      instance: async (sop: string) => (sop === '1.2.1.2' ? instance('1.2', 2) : undefined),
      // chunks cut inside the File Meta Information, as a stored file is read
      chunksOf: async function* () {
        yield* [FILE.subarray(0, 100), FILE.subarray(100, 143), FILE.subarray(143)]
      }
    },
    audit: {
      append: async entry => {
        entries.push(entry)
        return {} as never
      }
    },
    destinations
  })
  return { query, entries }
}

const keys = (pairs: Array<[string, string, string?]>): Identifier =>
  new Map(pairs.map(([tag, vr, value]) => [tag, { vr, values: value === undefined ? [] : [value] }]))
const request = (level: QueryLevel, identifier: Identifier): QueryRequest => ({
  model: 'study',
  level,
  identifier,
  callingAeTitle: 'FINDSCU',
  address: '127.0.0.1'
})
const values = (answer: Identifier, tag: string): string[] | undefined => {
  const value = answer.get(tag)
  return value !== undefined && 'values' in value ? value.values : undefined
}

test('STUDY: wildcards, date ranges match; keys come back, unknown ones empty, the unique key added', async () => {
  const { query, entries } = provider()
  const found = await query.find(
    request(
      'STUDY',
      keys([
        ['00100010', 'PN', 'DOE^J*'],
        ['00080020', 'DA', '20240301-'],
        ['00100021', 'LO'],
        ['00080061', 'CS']
      ])
    )
  )
  assert.ok(Array.isArray(found))
  assert.is(found.length, 1)
  const [jane] = found as Identifier[]
  assert.equal(values(jane as Identifier, '00100010'), ['DOE^JANE'])
  assert.equal(values(jane as Identifier, '00100021'), [])
  assert.equal(values(jane as Identifier, '00080061'), ['CT'])
  assert.equal(values(jane as Identifier, '0020000D'), ['1.2'])
  assert.is(entries[0]?.detail, 'C-FIND STUDY by 00100010,00080020: 1 result(s)')
  assert.not.match(JSON.stringify(entries), 'DOE')
})

test('IMAGE: the study and series keys prune, the instance keys match; SOP Class UID answered', async () => {
  const { query } = provider()
  const found = await query.find(
    request(
      'IMAGE',
      keys([
        ['0020000D', 'UI', '1.1\\1.2'],
        ['00200013', 'IS', '2'],
        ['00080016', 'UI'],
        ['00080018', 'UI']
      ])
    )
  )
  assert.equal(
    (found as Identifier[]).map(a => values(a, '00080018')?.[0]),
    ['1.1.1.2', '1.2.1.2']
  )
  assert.equal(
    (found as Identifier[]).map(a => values(a, '00080016')?.[0]),
    [CT, CT]
  )
})

test('PATIENT: by Patient ID, with counts; Patient Root answers carry the Patient ID; bad dates A900', async () => {
  const { query } = provider()
  const inPatientRoot = await query.find({ ...request('STUDY', keys([['00100020', 'LO', 'P2']])), model: 'patient' })
  const uniques = (inPatientRoot as Identifier[]).map(a => [values(a, '00100020'), values(a, '0020000D')])
  assert.equal(uniques, [[['P2'], ['1.2']]])
  const found = await query.find(
    request(
      'PATIENT',
      keys([
        ['00100020', 'LO', 'P1'],
        ['00201200', 'IS']
      ])
    )
  )
  assert.equal(
    (found as Identifier[]).map(a => values(a, '00201200')),
    [['1']]
  )
  const bad = await query.find(request('STUDY', keys([['00080020', 'DA', '2024-01-05x']])))
  assert.equal('status' in bad ? bad.status : undefined, 0xa900)
})

test('retrieve: by study, series and instance UIDs; each data set as stored, after its meta information', async () => {
  const { query } = provider()
  const byStudy = await query.retrieve(request('STUDY', keys([['0020000D', 'UI', '1.2']])))
  assert.equal(Array.isArray(byStudy) ? byStudy.map(i => i.sopInstanceUid) : byStudy, ['1.2.1.1', '1.2.1.2'])
  const byImage = await query.retrieve(request('IMAGE', keys([['00080018', 'UI', '1.2.1.2\\9.9']])))
  assert.ok(Array.isArray(byImage))
  const [one] = byImage as Awaited<ReturnType<DimseQuery['retrieve']>> & unknown[]
  const parts: Buffer[] = []
  for await (const part of (one as { dataset(): AsyncIterable<Uint8Array> }).dataset()) parts.push(Buffer.from(part))
  assert.is(Buffer.concat(parts).toString(), 'DATASET')
  const none = await query.retrieve(request('SERIES', keys([['0020000D', 'UI', '1.2']])))
  assert.equal('status' in none ? [none.status, none.errorComment] : none, [
    0xa900,
    'no SeriesInstanceUID to retrieve by'
  ])
})

test('a retrieve is audited as 110106 Export, one record per study, with what was sent and what failed', async () => {
  const { query, entries } = provider()
  const instances = await query.retrieve(request('PATIENT', keys([['00100020', 'LO', 'P2']])))
  assert.ok(Array.isArray(instances))
  const [sent, failed] = instances as Array<{ sopInstanceUid: string }>
  await query.retrieved({
    request: request('PATIENT', new Map()),
    operation: 'move',
    destination: 'PACS',
    sent: [sent] as never,
    failed: [failed] as never
  })
  assert.equal(
    entries.map(e => [e.event, e.study, e.instances, e.outcome, e.detail]),
    [['export', '1.2', ['1.2.1.1'], 4, 'C-MOVE to PACS: 1 sent, 1 failed']]
  )
})

const sequenceKey = (tag: string, items: Identifier[]): Identifier => new Map([[tag, { vr: 'SQ', items }]])
const itemsOf = (answer: Identifier | undefined, tag: string): Identifier[] | undefined => {
  const value = answer?.get(tag)
  return value !== undefined && 'items' in value ? value.items : undefined
}

test('sequence matching: any item matching every item key; those items returned with the item keys asked for', async () => {
  const { query, entries } = provider()
  const codeKey = (value: string) =>
    keys([
      ['00080100', 'SH', value],
      ['00080104', 'LO']
    ])
  const neck = (await query.find(request('STUDY', sequenceKey(PROCEDURE_CODES, [codeKey('CTN*')])))) as Identifier[]
  assert.is(neck.length, 1)
  assert.equal(values(neck[0] as Identifier, '0020000D'), ['1.1'])
  const items = itemsOf(neck[0], PROCEDURE_CODES) as Identifier[]
  assert.is(items.length, 1)
  assert.equal([...(items[0] as Identifier).keys()], ['00080100', '00080104'])
  assert.equal(values(items[0] as Identifier, '00080100'), ['CTNECK'])
  assert.equal(values(items[0] as Identifier, '00080104'), ['CT neck'])
  assert.is(entries[0]?.detail, 'C-FIND STUDY by 00081032>00080100: 1 result(s)')
  assert.not.match(JSON.stringify(entries), 'CTN')

  // Every item key of one item must match: a code of one study with the meaning of the other matches neither.
  const mixed = keys([
    ['00080100', 'SH', 'CTHEAD'],
    ['00080104', 'LO', 'CT chest']
  ])
  assert.equal(await query.find(request('STUDY', sequenceKey(PROCEDURE_CODES, [mixed]))), [])
  // A list of values, and the sequence's key with the study's own keys.
  const both = new Map([
    ...keys([['00100020', 'LO', 'P2']]),
    ...sequenceKey(PROCEDURE_CODES, [codeKey('CTHEAD\\CTCHEST')])
  ])
  const chest = (await query.find(request('STUDY', both))) as Identifier[]
  assert.equal(
    chest.map(a => values(a, '0020000D')),
    [['1.2']]
  )
})

test('sequence matching: an empty sequence or item keys without values match all, every item returned', async () => {
  const { query } = provider()
  const all = (await query.find(request('STUDY', sequenceKey(PROCEDURE_CODES, [])))) as Identifier[]
  assert.is(all.length, 2)
  const first = itemsOf(all[0], PROCEDURE_CODES) as Identifier[]
  assert.equal(
    first.map(item => values(item, '00080100')),
    [['CTHEAD'], ['CTNECK']]
  )
  // With no item asked for whole, every kept item attribute comes back (Coding Scheme Version empty).
  assert.equal([...(first[0] as Identifier).keys()], ['00080100', '00080102', '00080103', '00080104'])
  assert.equal(values(first[0] as Identifier, '00080103'), [])
  const universal = (await query.find(
    request('STUDY', sequenceKey(PROCEDURE_CODES, [keys([['00080100', 'SH']])]))
  )) as Identifier[]
  assert.equal(
    universal.map(a => (itemsOf(a, PROCEDURE_CODES) ?? []).length),
    [2, 1]
  )
})

test('sequence matching at SERIES and IMAGE; a sequence the index does not keep is universal, answered empty', async () => {
  const { query } = provider()
  const requested = keys([
    ['00401001', 'SH', 'RP77'],
    ['00400009', 'SH']
  ])
  const series = (await query.find(request('SERIES', sequenceKey(REQUEST_ATTRIBUTES, [requested])))) as Identifier[]
  assert.equal(
    series.map(a => values(a, '0020000E')),
    [['1.2.1']]
  )
  const [item] = itemsOf(series[0], REQUEST_ATTRIBUTES) as Identifier[]
  assert.equal(values(item as Identifier, '00400009'), ['SPS7', 'SPS8'])
  const bySps = keys([['00400009', 'SH', 'SPS8']])
  const images = (await query.find(request('IMAGE', sequenceKey(REQUEST_ATTRIBUTES, [bySps])))) as Identifier[]
  assert.equal(
    images.map(a => values(a, '00080018')),
    [['1.2.1.1'], ['1.2.1.2']]
  )
  // The study's ProcedureCodeSequence matches at IMAGE level too.
  const head = sequenceKey(PROCEDURE_CODES, [keys([['00080100', 'SH', 'CTHEAD']])])
  const headImages = (await query.find(request('IMAGE', head))) as Identifier[]
  assert.equal(
    headImages.map(a => values(a, '00080018')),
    [['1.1.1.1'], ['1.1.1.2']]
  )
  // RequestAttributesSequence is a series attribute: at STUDY level it is not kept, so universal and empty.
  const atStudy = (await query.find(request('STUDY', sequenceKey(REQUEST_ATTRIBUTES, [requested])))) as Identifier[]
  assert.is(atStudy.length, 2)
  assert.equal(itemsOf(atStudy[0], REQUEST_ATTRIBUTES), [])
  // ReferencedStudySequence is not indexed: universal, with no item.
  const referenced = sequenceKey('00081110', [keys([['00081155', 'UI', '9.9']])])
  const unkept = (await query.find(request('STUDY', referenced))) as Identifier[]
  assert.is(unkept.length, 2)
  assert.equal(itemsOf(unkept[1], '00081110'), [])
})

test('sequence matching: a key of two items, or a bad item key value, is refused A900', async () => {
  const { query } = provider()
  const two = sequenceKey(PROCEDURE_CODES, [keys([['00080100', 'SH', 'A']]), keys([['00080100', 'SH', 'B']])])
  const refusedTwo = await query.find(request('STUDY', two))
  assert.ok(!Array.isArray(refusedTwo) && refusedTwo.status === 0xa900)
  assert.match(refusedTwo.errorComment, 'one item')
  const long = sequenceKey(PROCEDURE_CODES, [keys([['00080100', 'SH', 'X'.repeat(2000)]])])
  const refusedLong = await query.find(request('STUDY', long))
  assert.ok(!Array.isArray(refusedLong) && refusedLong.status === 0xa900)
  assert.match(refusedLong.errorComment, 'ProcedureCodeSequence')
})

test.run()

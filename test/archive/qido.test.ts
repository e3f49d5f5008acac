/**
 * QIDO-RS: query parameters, every matching rule of PS3.4 C.2.2.2 (a record that matches and one that must
 * not), and the DICOM JSON of a matched record.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { type Level, MAX_LIMIT, matches, parseQidoQuery, QIDO_ATTRIBUTES, toQidoJson } from '../../node/archive/qido.ts'
import { BadRequestError } from '../../node/errors.ts'

type Params = Record<string, string | string[] | undefined>
type IndexRecord = Record<string, string | string[] | number | undefined>

const study: IndexRecord = {
  '00080020': '20240315',
  '00080030': '101500',
  '00080050': 'ACC-1',
  '00080061': ['CT', 'SR'],
  '00080090': 'House^Gregory',
  '00081030': 'CT Chest',
  '00100010': 'Doe^Jane',
  '00100020': 'PID-42',
  '00100030': '19800229',
  '00100040': 'F',
  '0020000D': '1.2.840.99.1',
  '00200010': 'S1',
  '00201206': 2,
  '00201208': 120,
  '00080056': 'ONLINE',
  '00081190': 'http://node/dicom-web/studies/1.2.840.99.1'
}

const series: IndexRecord = {
  '00080060': 'CT',
  '0008103E': 'Axial 1mm',
  '0020000D': '1.2.840.99.1',
  '0020000E': '1.2.840.99.1.1',
  '00200011': '3',
  '00201209': 118,
  '00400244': '20240315'
}

const instance: IndexRecord = {
  '00080016': '1.2.840.10008.5.1.4.1.1.2',
  '00080018': '1.2.840.99.1.1.7',
  '0020000D': '1.2.840.99.1',
  '0020000E': '1.2.840.99.1.1',
  '00200013': '7',
  '00280008': '1',
  '00280010': '512',
  '00280011': '512',
  '00083002': '1.2.840.10008.1.2.1'
}

const query = (params: Params, level: Level = 'study') => parseQidoQuery(params, level)

function badRequest(params: Params, level: Level = 'study'): void {
  try {
    parseQidoQuery(params, level)
  } catch (error) {
    assert.instance(error, BadRequestError, JSON.stringify(params))
    assert.is((error as BadRequestError).code, 'RADMESH_BAD_REQUEST')
    return
  }
  assert.unreachable(`${JSON.stringify(params)} should be refused`)
}

/** Asserts that `params` matches `yes` and does not match `no`. */
function rule(params: Params, yes: IndexRecord, no: IndexRecord, level: Level = 'study'): void {
  const q = query(params, level)
  assert.ok(matches(q, yes), `${JSON.stringify(params)} should match ${JSON.stringify(yes)}`)
  assert.not.ok(matches(q, no), `${JSON.stringify(params)} should not match ${JSON.stringify(no)}`)
}

test('the attribute tables have the tags the brief names, once per level', () => {
  const tags = (level: Level): string[] => QIDO_ATTRIBUTES[level].map(a => a.tag)
  for (const tag of [
    '00080020',
    '00080030',
    '00080050',
    '00080061',
    '00080090',
    '00081030',
    '00100010',
    '00100020',
    '00100030',
    '00100040',
    '0020000D',
    '00200010',
    '00201206',
    '00201208',
    '00080056',
    '00081190'
  ])
    assert.ok(tags('study').includes(tag), tag)
  for (const tag of ['00080060', '0008103E', '00200011', '0020000E', '00180015', '00201209', '00400244'])
    assert.ok(tags('series').includes(tag), tag)
  for (const tag of ['00080016', '00080018', '00200013', '00280010', '00280011', '00280008', '00020010'])
    assert.ok(tags('instance').includes(tag), tag)
  for (const level of ['study', 'series', 'instance'] as const) assert.is(new Set(tags(level)).size, tags(level).length)
})

test('parse: keywords and tags, includefield, limit, offset, fuzzymatching', () => {
  assert.equal(
    query({
      PatientID: 'PID-42',
      '00080020': '20240101-',
      includefield: ['00081030,StudyID', 'ReferringPhysicianName'],
      limit: '10',
      offset: '20',
      fuzzymatching: 'true'
    }),
    {
      filters: [
        { tag: '00100020', value: 'PID-42' },
        { tag: '00080020', value: '20240101-' }
      ],
      includeAll: false,
      includeFields: ['00081030', '00200010', '00080090'],
      limit: 10,
      offset: 20,
      fuzzy: true
    }
  )
  assert.equal(query({}), { filters: [], includeAll: false, includeFields: [], offset: 0, fuzzy: false })
  assert.is(query({ includefield: 'all' }).includeAll, true)
  assert.is(query({ includefield: ['00081030', 'all'] }).includeAll, true)
  assert.is(query({ limit: '999999' }).limit, MAX_LIMIT)
  assert.equal(query({ '0020000d': '1.2' }).filters, [{ tag: '0020000D', value: '1.2' }]) // hex in any case
  assert.equal(query({ AvailableTransferSyntaxUID: '1.2.840.10008.1.2.1' }, 'instance').filters, [
    { tag: '00020010', value: '1.2.840.10008.1.2.1' }
  ])
  // a tag not indexed: accepted, never present
  assert.equal(query({ includefield: '00191010' }).includeFields, ['00191010'])
  assert.equal(query({ accept: 'application/dicom+json', PatientID: undefined }).filters, [])
})

test('parse: unknown attributes, bad limit/offset, bad dates and times, wrong level -> BadRequestError', () => {
  badRequest({ PatientsName: 'x' }) // not a keyword
  badRequest({ '0010001': 'x' }) // not 8 hex digits
  badRequest({ includefield: 'NoSuchKeyword' })
  badRequest({ 'ReferencedSeriesSequence.SeriesInstanceUID': '1.2' })
  badRequest({ Modality: 'CT' }) // a series attribute in a study query
  badRequest({ SOPInstanceUID: '1.2' }, 'series')
  for (const limit of ['-1', 'abc', '1.5', '', '0', '1e3']) badRequest({ limit })
  for (const offset of ['-5', 'x', '2.0']) badRequest({ offset })
  badRequest({ limit: ['1', '2'] })
  badRequest({ fuzzymatching: 'yes' })
  for (const date of [
    '2024-03-15',
    '20241315',
    '20240230',
    '2024031',
    '20240315-2024',
    '-',
    '20240101-20240201-20240301',
    '2024*'
  ])
    badRequest({ StudyDate: date })
  badRequest({ PatientBirthDate: '19800230' })
  for (const time of ['2500', '1260', '10:15', '101500-25', 'noon']) badRequest({ StudyTime: time })
  badRequest({ SeriesNumber: 'three' }, 'series')
  badRequest({ PatientID: ['a', 'b'] }) // only UIDs and code strings take lists
})

test('an empty value matches everything, even a record without the attribute', () => {
  const q = query({ PatientName: '', StudyDate: '' })
  assert.ok(matches(q, study))
  assert.ok(matches(q, {}))
  assert.ok(matches(query({ PatientName: '*' }), study))
})

test('single value matching is exact and case-sensitive', () => {
  rule({ PatientID: 'PID-42' }, study, { ...study, '00100020': 'PID-420' })
  rule({ PatientID: 'PID-42' }, study, { ...study, '00100020': 'pid-42' })
  rule({ AccessionNumber: 'ACC-1' }, study, { ...study, '00080050': undefined })
  rule({ PatientSex: 'F' }, study, { ...study, '00100040': 'M' })
  rule({ PatientName: 'Doe^Jane' }, study, { ...study, '00100010': 'DOE^JANE' }) // not fuzzy: case matters
})

test('fuzzymatching=true: Person Names ignore case (other VRs do not)', () => {
  rule(
    { PatientName: 'doe^jane', fuzzymatching: 'true' },
    { ...study, '00100010': 'DOE^JANE' },
    { ...study, '00100010': 'Doe^John' }
  )
  rule({ ReferringPhysicianName: 'house*', fuzzymatching: 'true' }, study, { ...study, '00080090': 'Wilson^James' })
  rule({ PatientID: 'pid-42', fuzzymatching: 'true' }, { ...study, '00100020': 'pid-42' }, study)
})

test('a Person Name matches on any of its component groups', () => {
  const japanese = { ...study, '00100010': 'Yamada^Tarou=山田^太郎=やまだ^たろう' }
  rule({ PatientName: '山田^太郎' }, japanese, study)
  rule({ PatientName: 'Yamada*' }, japanese, study)
})

test('wildcards: * any run, ? one character, anchored at both ends', () => {
  rule({ PatientName: 'Doe*' }, study, { ...study, '00100010': 'Smith^Doe' })
  rule({ PatientName: '*Jane' }, study, { ...study, '00100010': 'Jane^Doe' })
  rule({ PatientName: 'D?e^Jane' }, study, { ...study, '00100010': 'Dooe^Jane' })
  rule({ StudyDescription: 'CT*' }, study, { ...study, '00081030': 'MR Brain' })
  // regex characters are literal
  rule({ StudyDescription: '*(ches?)*' }, { ...study, '00081030': 'CT (chest) low dose' }, study)
  rule({ AccessionNumber: 'ACC-?' }, study, { ...study, '00080050': 'ACC-12' })
})

test('wildcards: runs of * collapse, middle segments are found left to right, ? is one character, never none', () => {
  const described = (text: string): IndexRecord => ({ ...study, '00081030': text })
  rule({ StudyDescription: '**CT***' }, study, described('MR Brain'))
  rule({ StudyDescription: 'CT*Che*' }, study, described('CT Abdomen'))
  rule({ StudyDescription: '*a*b*a*' }, described('xaxbxax'), described('xbxaxbx'))
  rule({ StudyDescription: 'ab*ba' }, described('abba'), described('aba')) // prefix and suffix may not overlap
  rule({ StudyDescription: '*?' }, described('x'), described(''))
  rule({ StudyDescription: 'C?*' }, study, described('C'))
  rule({ StudyDescription: '*e?t*' }, study, described('CT Chet'))
  rule({ StudyDescription: '*?st' }, study, described('st'))
  rule({ StudyDescription: '?' }, described('x'), described('xy'))
})

test('wildcards match by character: ? is one code point, even outside the BMP; fuzzy names fold case', () => {
  const named = (name: string): IndexRecord => ({ ...study, '00100010': name })
  rule({ PatientName: 'Ma?er^𝔄?ne' }, named('Maïer^𝔄🦄ne'), named('Maïer^𝔄ne'))
  rule({ PatientName: '??^*' }, named('🦄𝔄^X'), named('🦄^X'))
  rule({ PatientName: 'ünïcødé*', fuzzymatching: 'true' }, named('ÜNÏCØDÉ^ÇANARY'), named('UNICODE^CANARY'))
  rule(
    {
      PatientName: '*^çanar?',
      fuzzymatching: 'true'
    },
    named('Ünïcødé^ÇANARY'),
    named('Ünïcødé^ÇANARIES')
  )
  rule({ PatientName: 'ünïcødé*' }, named('ünïcødé^x'), named('ÜNÏCØDÉ^x')) // not fuzzy: case matters
  rule({ PatientName: 'straße*', fuzzymatching: 'true' }, named('STRAẞE^X'), named('STRASSE^X'))
})

test('a wildcard query runs in linear time: 40 stars against a 10,000-character value answer in under 50 ms', () => {
  const value = 'a'.repeat(10_000)
  const stars = [`${'*'.repeat(40)}#`, `${'*a'.repeat(40)}#`, `${'*?'.repeat(40)}#`]
  const patterns = [...stars, `*${'a'.repeat(500)}b*`, `*${'a?'.repeat(300)}b*`]
  for (const pattern of patterns) {
    const q = query({ StudyDescription: pattern, fuzzymatching: 'true' })
    const started = performance.now()
    assert.not.ok(matches(q, { ...study, '00081030': value }))
    const elapsed = performance.now() - started
    assert.ok(elapsed < 50, `${pattern.slice(0, 20)}… took ${elapsed.toFixed(1)} ms`)
  }
  assert.ok(matches(query({ StudyDescription: `${'*a'.repeat(40)}*` }), { ...study, '00081030': value }))
})

test('a matching key value over 1024 characters is refused', () => {
  badRequest({ StudyDescription: `${'*'.repeat(1025)}` })
  badRequest({ PatientName: 'x'.repeat(1025) })
  badRequest({ StudyInstanceUID: Array.from({ length: 40 }, (_, i) => `1.2.840.99.${i}`.padEnd(30, '1')) })
  assert.is(query({ PatientName: 'x'.repeat(1024) }).filters.length, 1)
})

test('UID list matching: values separated by backslash or comma, or the parameter repeated', () => {
  const other = { ...study, '0020000D': '1.2.840.99.2' }
  rule({ StudyInstanceUID: '1.2.840.99.3,1.2.840.99.1' }, study, other)
  rule({ StudyInstanceUID: '1.2.840.99.3\\1.2.840.99.1' }, study, other)
  rule({ StudyInstanceUID: ['1.2.840.99.3', '1.2.840.99.1'] }, study, other)
  rule({ StudyInstanceUID: '1.2.840.99.1' }, study, { ...study, '0020000D': '1.2.840.99.10' }) // no prefix matching
  rule({ StudyInstanceUID: '1.2.840.99.*' }, { ...study, '0020000D': '1.2.840.99.*' }, study) // no wildcards in UIDs
})

test('date range matching: A-B, -B, A- (inclusive), single dates, old "YYYY.MM.DD" values', () => {
  rule({ StudyDate: '20240301-20240331' }, study, { ...study, '00080020': '20240401' })
  rule({ StudyDate: '20240315-20240315' }, study, { ...study, '00080020': '20240314' })
  rule({ StudyDate: '-20240315' }, study, { ...study, '00080020': '20240316' })
  rule({ StudyDate: '20240315-' }, study, { ...study, '00080020': '20240314' })
  rule({ StudyDate: '20240315' }, study, { ...study, '00080020': '20240316' })
  rule({ StudyDate: '19970101-19971231' }, { ...study, '00080020': '1997.04.24' }, study)
  rule({ StudyDate: '20240101-' }, study, { ...study, '00080020': undefined }) // no date: only universal matching
  rule({ PatientBirthDate: '19700101-19891231' }, study, { ...study, '00100030': '19900101' })
  rule({ PerformedProcedureStepStartDate: '-20240315' }, series, { ...series, '00400244': '20250101' }, 'series')
})

test('time range matching, with partial times as the whole hour or minute', () => {
  rule({ StudyTime: '100000-110000' }, study, { ...study, '00080030': '110001' })
  rule({ StudyTime: '10-10' }, { ...study, '00080030': '105959.5' }, { ...study, '00080030': '110000' })
  rule({ StudyTime: '1015-' }, study, { ...study, '00080030': '1014' })
  rule({ StudyTime: '-0959' }, { ...study, '00080030': '09:59:30' }, study)
  rule({ StudyTime: '101500' }, { ...study, '00080030': '1015' }, { ...study, '00080030': '101501' })
})

test('a multi-valued record attribute matches when any value does', () => {
  rule({ ModalitiesInStudy: 'SR' }, study, { ...study, '00080061': ['MR', 'PR'] })
  rule({ ModalitiesInStudy: 'MR,SR' }, study, { ...study, '00080061': ['US'] })
  rule({ ModalitiesInStudy: ['PT', 'CT'] }, study, { ...study, '00080061': [] })
  rule({ ModalitiesInStudy: 'C?' }, study, { ...study, '00080061': ['MR'] })
})

test('numbers match by value; several filters must all match', () => {
  rule({ SeriesNumber: '3' }, series, { ...series, '00200011': '13' }, 'series')
  rule({ NumberOfSeriesRelatedInstances: '118' }, series, { ...series, '00201209': 117 }, 'series')
  rule({ Rows: '512' }, instance, { ...instance, '00280010': 256 }, 'instance')
  rule({ PatientID: 'PID-42', ModalitiesInStudy: 'CT' }, study, { ...study, '00080061': 'MR' })
  rule({ StudyInstanceUID: '1.2.840.99.1', Modality: 'CT' }, series, { ...series, '00080060': 'MR' }, 'series')
})

test('the transfer syntax matches from 00083002 (or 00020010) in the record', () => {
  rule(
    { TransferSyntaxUID: '1.2.840.10008.1.2.1' },
    instance,
    { ...instance, '00083002': '1.2.840.10008.1.2.4.50' },
    'instance'
  )
  rule(
    { '00083002': '1.2.840.10008.1.2.1' },
    { ...instance, '00083002': undefined, '00020010': '1.2.840.10008.1.2.1' },
    { ...instance, '00083002': undefined },
    'instance'
  )
})

test('toQidoJson: study defaults, PN as Alphabetic, IS as numbers, empty values, keys in tag order', () => {
  const json = toQidoJson({ ...study, '00080050': '', '00101010': '044Y' }, 'study', query({}))
  assert.equal(json['00100010'], { vr: 'PN', Value: [{ Alphabetic: 'Doe^Jane' }] })
  assert.equal(json['00080090'], { vr: 'PN', Value: [{ Alphabetic: 'House^Gregory' }] })
  assert.equal(json['00201206'], { vr: 'IS', Value: [2] })
  assert.equal(json['00201208'], { vr: 'IS', Value: [120] })
  assert.equal(json['00080061'], { vr: 'CS', Value: ['CT', 'SR'] })
  assert.equal(json['00080020'], { vr: 'DA', Value: ['20240315'] })
  assert.equal(json['00081190'], { vr: 'UR', Value: ['http://node/dicom-web/studies/1.2.840.99.1'] })
  assert.equal(json['00080050'], { vr: 'SH' }) // present but empty
  assert.is(json['00101010'], undefined) // not a study attribute, not asked for
  const keys = Object.keys(json)
  assert.equal(keys, [...keys].sort())
  assert.ok(JSON.parse(JSON.stringify(json)))
})

test('toQidoJson: Person Name component groups, numbers from strings, unparseable US dropped', () => {
  const json = toQidoJson(
    {
      ...study,
      '00100010': 'Yamada^Tarou=山田^太郎=やまだ^たろう'
    },
    'study',
    query({})
  )
  assert.equal(json['00100010'], {
    vr: 'PN',
    Value: [{ Alphabetic: 'Yamada^Tarou', Ideographic: '山田^太郎', Phonetic: 'やまだ^たろう' }]
  })
  const inst = toQidoJson({ ...instance, '00280011': 'x', '00200013': 'seven' }, 'instance', query({}, 'instance'))
  assert.equal(inst['00280010'], { vr: 'US', Value: [512] })
  assert.equal(inst['00280011'], { vr: 'US' })
  assert.equal(inst['00200013'], { vr: 'IS', Value: ['seven'] }) // an IS that is not a number stays a string
})

test('toQidoJson: instance answers Available Transfer Syntax UID, with study and series UIDs', () => {
  const json = toQidoJson(instance, 'instance', query({}, 'instance'))
  assert.equal(json['00083002'], { vr: 'UI', Value: ['1.2.840.10008.1.2.1'] })
  assert.is(json['00020010'], undefined)
  assert.equal(json['00200013'], { vr: 'IS', Value: [7] })
  assert.equal(json['00280008'], { vr: 'IS', Value: [1] })
  assert.equal(json['0020000D'], { vr: 'UI', Value: ['1.2.840.99.1'] })
  assert.equal(json['0020000E'], { vr: 'UI', Value: ['1.2.840.99.1.1'] })
  assert.is(json['00100010'], undefined)
  const fromOldKey = toQidoJson(
    { ...instance, '00083002': undefined, '00020010': '1.2.840.10008.1.2' },
    'instance',
    query({}, 'instance')
  )
  assert.equal(fromOldKey['00083002'], { vr: 'UI', Value: ['1.2.840.10008.1.2'] })
})

test('toQidoJson: includefield and includefield=all add attributes; matching keys are returned', () => {
  const record = { ...series, '00100010': 'Doe^Jane', '00081030': 'CT Chest' }
  const plain = toQidoJson(record, 'series', query({}, 'series'))
  assert.is(plain['00100010'], undefined)
  assert.equal(plain['00200011'], { vr: 'IS', Value: [3] })
  assert.equal(toQidoJson(record, 'series', query({ includefield: 'PatientName' }, 'series'))['00100010'], {
    vr: 'PN',
    Value: [{ Alphabetic: 'Doe^Jane' }]
  })
  const all = toQidoJson(record, 'series', query({ includefield: 'all' }, 'series'))
  assert.equal(all['00081030'], { vr: 'LO', Value: ['CT Chest'] })
  assert.equal(all['00100010'], { vr: 'PN', Value: [{ Alphabetic: 'Doe^Jane' }] })
  const matched = toQidoJson(record, 'series', query({ PatientName: 'Doe*' }, 'series'))
  assert.equal(matched['00100010'], { vr: 'PN', Value: [{ Alphabetic: 'Doe^Jane' }] })
  assert.is(toQidoJson(record, 'series', query({ includefield: '00191010' }, 'series'))['00191010'], undefined)
})

test.run()

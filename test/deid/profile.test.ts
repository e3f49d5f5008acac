/**
 * The Annex E table as data and the decisions made from it: every row names the tag the standard's data
 * dictionary (dcmjs's copy) gives its keyword, the options change only what the standard says they change,
 * and dates move by whole days.
 */
import { createRequire } from 'node:module'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { actionFor, ANNEX_E } from '../../node/deid/index.ts'
import { shiftDates } from '../../node/deid/profile.ts'

interface Entry {
  name?: string
}
const dictionary = (
  createRequire(import.meta.url)('dcmjs') as { data: { DicomMetaDictionary: { dictionary: Record<string, Entry> } } }
).data.DicomMetaDictionary.dictionary

test('every row of the table names the tag the data dictionary gives its keyword', () => {
  assert.ok(ANNEX_E.size > 250)
  for (const row of ANNEX_E.values()) {
    const hex = row.tag.toString(16).toUpperCase().padStart(8, '0')
    const name = dictionary[`(${hex.slice(0, 4)},${hex.slice(4)})`]?.name
    const what = `${hex} ${row.keyword}: the dictionary says ${name}`
    assert.ok(name === row.keyword || name === `RETIRED_${row.keyword}`, what)
  }
})

test('the Basic Profile empties the patient identifiers and removes what the table says', () => {
  assert.is(actionFor(0x00100010, 'PN', {}), 'empty') // PatientName Z
  assert.is(actionFor(0x00100020, 'LO', {}), 'empty') // PatientID Z
  assert.is(actionFor(0x00100030, 'DA', {}), 'empty') // PatientBirthDate Z
  assert.is(actionFor(0x00101040, 'LO', {}), 'remove') // PatientAddress X
  assert.is(actionFor(0x00081030, 'LO', {}), 'remove') // StudyDescription X
  assert.is(actionFor(0x00080080, 'LO', {}), 'dummy') // InstitutionName X/Z/D
  assert.is(actionFor(0x0020000d, 'UI', {}), 'uid')
  assert.is(actionFor(0x00081140, 'SQ', {}), 'keep') // ReferencedImageSequence X/Z/U*: kept, UIDs replaced inside
})

test('what the table does not list is decided by kind: private, UIDs, dates, names, free text', () => {
  assert.is(actionFor(0x00091001, 'LO', {}), 'remove') // private
  assert.is(actionFor(0x00290010, 'LO', {}), 'remove') // private creator
  assert.is(actionFor(0x60003000, 'OW', {}), 'remove') // overlay data
  assert.is(actionFor(0x00080000, 'UL', {}), 'remove') // group length
  assert.is(actionFor(0x00080016, 'UI', {}), 'keep') // SOP Class UID
  assert.is(actionFor(0x00081150, 'UI', {}), 'keep') // Referenced SOP Class UID
  assert.is(actionFor(0x00209221, 'UI', {}), 'uid') // an unlisted UID
  assert.is(actionFor(0x00181202, 'DA', {}), 'dummy') // an unlisted date
  assert.is(actionFor(0x00181202, 'DA', { retainDates: 'modified' }), 'clean')
  assert.is(actionFor(0x00181202, 'DA', { retainDates: 'full' }), 'keep')
  assert.is(actionFor(0x00321034, 'PN', {}), 'empty') // an unlisted person name
  assert.is(actionFor(0x00181030, 'LO', {}), 'dummy') // ProtocolName X/D
  assert.is(actionFor(0x00700006, 'ST', {}), 'dummy') // unlisted free text: Unformatted Text Value
  assert.is(actionFor(0x00400555, 'SQ', {}), 'empty') // AcquisitionContextSequence X: emptied, never carried
  assert.is(actionFor(0x00280030, 'DS', {}), 'keep') // PixelSpacing
})

test('Retain Longitudinal Temporal Information keeps or cleans dates and times, and nothing else', () => {
  assert.is(actionFor(0x00080020, 'DA', { retainDates: 'full' }), 'keep')
  assert.is(actionFor(0x00080020, 'DA', { retainDates: 'modified' }), 'clean')
  assert.is(actionFor(0x00080030, 'TM', { retainDates: 'modified' }), 'clean')
  assert.is(actionFor(0x00100030, 'DA', { retainDates: 'full' }), 'empty') // birth date: no option
  assert.is(actionFor(0x00100010, 'PN', { retainDates: 'full' }), 'empty')
})

test('Retain Patient Characteristics keeps sex, age, size and weight, and not the identity', () => {
  const options = { retainPatientCharacteristics: true }
  for (const tag of [0x00100040, 0x00101010, 0x00101020, 0x00101030]) assert.is(actionFor(tag, 'CS', options), 'keep')
  assert.is(actionFor(0x00102110, 'LO', options), 'clean') // Allergies C
  assert.is(actionFor(0x00100040, 'CS', {}), 'empty')
  assert.is(actionFor(0x00101010, 'AS', {}), 'remove')
  assert.is(actionFor(0x00100020, 'LO', options), 'empty')
})

test('dates move by whole days across months, years and leap days; what is not a whole date is emptied', () => {
  assert.is(shiftDates('20240301', 'DA', -1), '20240229')
  assert.is(shiftDates('20230101', 'DA', -1), '20221231')
  assert.is(shiftDates('20230101\\20230102', 'DA', 10), '20230111\\20230112')
  assert.is(shiftDates('20230101120000.5+0100', 'DT', -365), '20220101120000.5+0100')
  assert.is(shiftDates('2023', 'DT', -1), '')
  assert.is(shiftDates('2023-01-01', 'DA', -1), '')
  assert.is(shiftDates('20230101-20230201', 'DA', -1), '')
  assert.is(shiftDates('', 'DA', -1), '')
})

test.run()

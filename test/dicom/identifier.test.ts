/**
 * Query/Retrieve identifiers: read in either little endian syntax with their character set (sequences,
 * person names, empty keys), written back in a character set that holds their values, and refused when they
 * are not a data set.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { TRANSFER_SYNTAX } from '../../node/dicom/dictionary.ts'
import { InvalidDicomError } from '../../node/dicom/errors.ts'
import { type Identifier, keyText, readIdentifier, writeIdentifier } from '../../node/dicom/identifier.ts'
import { writeDataset } from '../../node/dicom/writer.ts'

const IMPLICIT = TRANSFER_SYNTAX.implicitLittle
const EXPLICIT = TRANSFER_SYNTAX.explicitLittle

const request = (syntax: typeof IMPLICIT | typeof EXPLICIT, latin1Name: boolean): Buffer =>
  writeDataset(
    [
      { tag: 0x00080005, vr: 'CS', value: latin1Name ? 'ISO_IR 100' : 'ISO_IR 192' },
      { tag: 0x00080052, vr: 'CS', value: 'STUDY' },
      { tag: 0x00100010, vr: 'PN', value: latin1Name ? 'MÜLLER^H*' : 'DOE^J*=ドウ' },
      { tag: 0x0020000d, vr: 'UI', value: ['1.2.3', '1.2.4'] },
      { tag: 0x00080020, vr: 'DA', value: '20240101-20241231' },
      { tag: 0x00081032, vr: 'SQ', value: [[{ tag: 0x00080100, vr: 'SH', value: 'CT123' }]] },
      { tag: 0x00280010, vr: 'US', value: new Uint8Array(0) }
    ],
    !latin1Name,
    syntax === IMPLICIT ? { explicit: false, little: true } : { explicit: true, little: true }
  )

test('read in implicit and explicit VR: keys, lists, ranges, sequences, empty keys, Latin-1 names', () => {
  assert.is(keyText(readIdentifier(request(EXPLICIT, false), EXPLICIT), '00100010'), 'DOE^J*=ドウ')
  for (const syntax of [IMPLICIT, EXPLICIT]) {
    const identifier = readIdentifier(request(syntax, true), syntax)
    assert.is(keyText(identifier, '00080052'), 'STUDY', syntax)
    assert.is(keyText(identifier, '00100010'), 'MÜLLER^H*')
    assert.is(keyText(identifier, '0020000D'), '1.2.3\\1.2.4')
    assert.is(keyText(identifier, '00080020'), '20240101-20241231')
    assert.is(keyText(identifier, '00280010'), '')
    const sequence = identifier.get('00081032')
    assert.ok(sequence !== undefined && 'items' in sequence)
    assert.is(keyText(sequence.items[0] as Identifier, '00080100'), 'CT123')
  }
})

test('written back: ASCII as asked, Latin-1 as ISO_IR 100, anything beyond as UTF-8 (ISO_IR 192)', () => {
  const ascii: Identifier = new Map([['00100010', { vr: 'PN', values: ['DOE^JOHN'] }]])
  assert.is(readIdentifier(writeIdentifier(ascii, EXPLICIT, ''), EXPLICIT).has('00080005'), false)
  const latin1: Identifier = new Map([['00100010', { vr: 'PN', values: ['MÜLLER^HANS'] }]])
  const back = readIdentifier(writeIdentifier(latin1, IMPLICIT, ''), IMPLICIT)
  assert.is(keyText(back, '00080005'), 'ISO_IR 100')
  assert.is(keyText(back, '00100010'), 'MÜLLER^HANS')
  const wide: Identifier = new Map([
    ['00100010', { vr: 'PN', values: ['Yamada^Tarou=山田^太郎'] }],
    ['00081032', { vr: 'SQ', items: [] }],
    ['00280010', { vr: 'US', values: ['512'] }]
  ])
  const utf8 = readIdentifier(writeIdentifier(wide, EXPLICIT, 'ISO_IR 100'), EXPLICIT)
  assert.is(keyText(utf8, '00080005'), 'ISO_IR 192')
  assert.is(keyText(utf8, '00100010'), 'Yamada^Tarou=山田^太郎')
  assert.is(keyText(utf8, '00280010'), '512')
  assert.equal(utf8.get('00081032'), { vr: 'SQ', items: [] })
})

test('bytes that are not a data set are refused with InvalidDicomError', () => {
  const truncated = request(EXPLICIT, false).subarray(0, 30)
  assert.throws(
    () => readIdentifier(truncated, EXPLICIT),
    (error: unknown) => error instanceof InvalidDicomError
  )
})

test.run()

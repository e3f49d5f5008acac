/**
 * The dictionary: every list radmesh keeps of DICOM attributes comes from its one table and agrees with the
 * others (what is collected from an instance is what the index keeps, level by level; QIDO-RS answers each
 * level with its UIDs and those above), VRs and transfer syntaxes are classified once, and the DIMSE statuses
 * are the values PS3.7 and PS3.4 give them.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import {
  BINARY_VRS,
  COLLECTED_ATTRIBUTES,
  DEFLATED_SYNTAXES,
  DIMSE_STATUS,
  ENCAPSULATED_SYNTAXES,
  INDEXED_TAGS,
  isVr,
  LONG_VRS,
  QIDO_ATTRIBUTES,
  SHORT_VRS,
  SUPPORTED_TRANSFER_SYNTAXES,
  syntaxOf,
  TRANSFER_SYNTAX
} from '../../node/dicom/dictionary.ts'

const LEVELS = ['study', 'series', 'instance'] as const

test('what is collected from each instance is exactly what the index keeps, each tag at one level', () => {
  const indexed = LEVELS.flatMap(level => INDEXED_TAGS[level])
  assert.is(new Set(indexed).size, indexed.length, 'no tag at two levels')
  assert.equal([...indexed].sort(), Object.keys(COLLECTED_ATTRIBUTES).sort())
  assert.ok(INDEXED_TAGS.study.includes('0020000D') && INDEXED_TAGS.series.includes('0020000E'))
  assert.ok(INDEXED_TAGS.instance.includes('00080018'))
  for (const [tag, vr] of Object.entries(COLLECTED_ATTRIBUTES)) assert.ok(isVr(vr), `${tag} ${vr}`)
})

test('QIDO-RS: each level returns its own UID and those of the levels above it, in tag order', () => {
  const tags = (level: (typeof LEVELS)[number]): string[] => QIDO_ATTRIBUTES[level].map(a => a.tag)
  assert.ok(tags('study').includes('0020000D'))
  assert.ok(tags('series').includes('0020000D') && tags('series').includes('0020000E'))
  assert.ok(tags('instance').includes('0020000E') && tags('instance').includes('00080018'))
  for (const level of LEVELS) {
    assert.equal(tags(level), [...tags(level)].sort(), `${level} in tag order`)
    for (const { tag, keyword, vr } of QIDO_ATTRIBUTES[level]) {
      assert.match(tag, /^[0-9A-F]{8}$/)
      assert.match(keyword, /^[A-Z][A-Za-z]+$/)
      assert.ok(isVr(vr), `${keyword} ${vr}`)
    }
  }
  const keywords = new Map<string, string>()
  for (const level of LEVELS) {
    for (const { tag, keyword } of QIDO_ATTRIBUTES[level]) {
      assert.is(keywords.get(tag) ?? keyword, keyword, `${tag} has one keyword`)
      keywords.set(tag, keyword)
    }
  }
})

test('VRs: each is long or short, never both; binary VRs are long', () => {
  for (const vr of LONG_VRS) assert.not.ok(SHORT_VRS.has(vr), vr)
  assert.is(LONG_VRS.size + SHORT_VRS.size, 34)
  for (const vr of BINARY_VRS) assert.ok(LONG_VRS.has(vr), vr)
  assert.not.ok(isVr('ox'))
})

test('transfer syntaxes: every encapsulated one is supported; how each is encoded', () => {
  for (const uid of ENCAPSULATED_SYNTAXES) assert.ok(SUPPORTED_TRANSFER_SYNTAXES.has(uid), uid)
  assert.is(SUPPORTED_TRANSFER_SYNTAXES.size, Object.keys(TRANSFER_SYNTAX).length)
  assert.ok(DEFLATED_SYNTAXES.has(TRANSFER_SYNTAX.deflatedExplicitLittle))
  assert.equal(syntaxOf(TRANSFER_SYNTAX.implicitLittle), { explicit: false, little: true })
  assert.equal(syntaxOf(TRANSFER_SYNTAX.explicitBig), { explicit: true, little: false })
  assert.equal(syntaxOf(TRANSFER_SYNTAX.jpeg2000), { explicit: true, little: true })
})

test('DIMSE statuses are the values of PS3.7 Annex C and PS3.4 B.2.3, C.4', () => {
  assert.equal(
    { ...DIMSE_STATUS },
    {
      success: 0x0000,
      pending: 0xff00,
      cancel: 0xfe00,
      subOperationsFailed: 0xb000,
      tooManyMatches: 0xa701,
      subOperationsRefused: 0xa702,
      moveDestinationUnknown: 0xa801,
      identifierMismatch: 0xa900,
      sopClassNotSupported: 0x0122,
      unrecognizedOperation: 0x0211,
      outOfResources: 0xa700,
      datasetMismatch: 0xa900,
      cannotUnderstand: 0xc000
    }
  )
})

test.run()

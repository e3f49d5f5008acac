/**
 * The one DICOM writer: what it writes, the one reader reads back the same (elements in tag order, values
 * padded to an even length as PS3.5 says, sequences and items of defined length), explicit or implicit VR;
 * text in UTF-8 only where the character set applies; the File Meta Information it writes is read back by the
 * Part 10 reader; what it cannot write truthfully (one tag twice, text beyond Latin-1 outside UTF-8, a value
 * too long for its length field) is refused.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { EXPLICIT_LITTLE, IMPLICIT_LITTLE, type Syntax, tag } from '../../node/dicom/dictionary.ts'
import { Part10Reader } from '../../node/dicom/file.ts'
import { parsePart10 } from '../../node/dicom/part10.ts'
import { readDataset } from '../../node/dicom/reader.ts'
import type { DatasetVisitor } from '../../node/dicom/visitor.ts'
import { type Dataset, elementHeader, part10Header, writeDataset, writeGroup } from '../../node/dicom/writer.ts'

interface Read {
  tag: number
  vr: string | undefined
  depth: number
  value?: Buffer
}

/** Every element, sequence and item the reader finds, values collected. */
function readBack(bytes: Uint8Array, syntax: Syntax = EXPLICIT_LITTLE): Read[] {
  const found: Read[] = []
  const visitor: DatasetVisitor = {
    element: () => 'collect',
    value: (el, value) => {
      found.push({ tag: el.tag, vr: el.vr, depth: el.depth, value: Buffer.from(value) })
    },
    sequenceStart: el => {
      found.push({ tag: el.tag, vr: el.vr, depth: el.depth })
    },
    implicitVr: el => (el.tag === 0x00081115 ? 'SQ' : undefined)
  }
  readDataset(bytes, syntax, visitor)
  return found
}

const CT = '1.2.840.10008.5.1.4.1.1.2'

test('what is written is read back: elements sorted by tag, numbers, lists, bytes and sequences of items', () => {
  const dataset: Dataset = [
    { tag: tag(0x0028, 0x0010), vr: 'US', value: 512 },
    { tag: tag(0x0008, 0x0008), vr: 'CS', value: ['ORIGINAL', 'PRIMARY'] },
    { tag: tag(0x0008, 0x1115), vr: 'SQ', value: [[{ tag: tag(0x0020, 0x000e), vr: 'UI', value: '1.2.3' }], []] },
    { tag: tag(0x0028, 0x0000), vr: 'UL', value: 70_000 },
    { tag: tag(0x0009, 0x1001), vr: 'OB', value: new Uint8Array([1, 2, 3]) }
  ]
  const read = readBack(writeDataset(dataset))
  assert.equal(
    read.map(r => [r.tag.toString(16), r.vr, r.depth]),
    [
      ['80008', 'CS', 0],
      ['81115', 'SQ', 0],
      ['20000e', 'UI', 1],
      ['91001', 'OB', 0],
      ['280000', 'UL', 0],
      ['280010', 'US', 0]
    ]
  )
  const value = (t: number): Buffer => read.find(r => r.tag === t)?.value ?? Buffer.alloc(0)
  assert.is(value(tag(0x0008, 0x0008)).toString('latin1'), 'ORIGINAL\\PRIMARY')
  assert.equal([...value(tag(0x0009, 0x1001))], [1, 2, 3, 0], 'bytes padded with a zero')
  assert.is(value(tag(0x0020, 0x000e)).toString('latin1'), '1.2.3\0', 'a UID padded with NUL')
  assert.is(value(tag(0x0028, 0x0000)).readUInt32LE(0), 70_000)
  assert.is(value(tag(0x0028, 0x0010)).readUInt16LE(0), 512)
})

test('text is padded with a space, UIDs with NUL; long VRs have 2 reserved bytes and a 4-byte length', () => {
  const bytes = writeDataset([
    { tag: tag(0x0010, 0x0010), vr: 'PN', value: 'DOE^J' },
    { tag: tag(0x0008, 0x0018), vr: 'UI', value: '1.2.3' },
    { tag: tag(0x0040, 0xa160), vr: 'UT', value: 'odd' }
  ])
  assert.equal([...bytes.subarray(0, 8)], [0x08, 0, 0x18, 0, 0x55, 0x49, 6, 0])
  assert.is(bytes.toString('latin1', 8, 14), '1.2.3\0')
  assert.is(bytes.toString('latin1', 22, 28), 'DOE^J ')
  assert.equal([...bytes.subarray(28, 40)], [0x40, 0, 0x60, 0xa1, 0x55, 0x54, 0, 0, 4, 0, 0, 0])
  assert.is(bytes.toString('latin1', 40), 'odd ')
})

test('UTF-8 where the Specific Character Set applies (PN, LO, SH, ST, LT, UT, UC), Latin-1 elsewhere', () => {
  const dataset: Dataset = [
    { tag: tag(0x0010, 0x0010), vr: 'PN', value: 'Müller^山田' },
    { tag: tag(0x0010, 0x0040), vr: 'CS', value: 'É' }
  ]
  const read = readBack(writeDataset(dataset, true))
  assert.is(read[0]?.value?.toString('utf8').trimEnd(), 'Müller^山田')
  assert.equal([...(read[1]?.value ?? [])], [0xc9, 0x20], 'a CS is in the default repertoire: Latin-1')
  assert.throws(
    () => writeDataset(dataset, false),
    (error: Error) => error instanceof RangeError && /beyond Latin-1/.test(error.message)
  )
  assert.equal([...(readBack(writeDataset([dataset[1] as Dataset[number]]))[0]?.value ?? [])], [0xc9, 0x20])
})

test('implicit VR little endian: 8-byte headers and the same values; big endian is not written', () => {
  const dataset: Dataset = [
    { tag: tag(0x0000, 0x0100), vr: 'US', value: 1 },
    { tag: tag(0x0000, 0x0002), vr: 'UI', value: CT }
  ]
  const bytes = writeDataset(dataset, false, IMPLICIT_LITTLE)
  assert.is(bytes.readUInt32LE(4), CT.length + 1)
  assert.is(bytes.length, 8 + CT.length + 1 + 8 + 2)
  assert.equal(
    readBack(bytes, IMPLICIT_LITTLE).map(r => r.value?.length),
    [CT.length + 1, 2]
  )
  assert.throws(() => writeDataset(dataset, false, { explicit: true, little: false }), RangeError)
  assert.equal([...elementHeader(tag(0x7fe0, 0x0010), 'OW', 8, IMPLICIT_LITTLE)], [0xe0, 0x7f, 0x10, 0, 8, 0, 0, 0])
})

test('a group is written after its group length, which counts the bytes that follow', () => {
  const group = writeGroup(0x0000, [{ tag: tag(0x0000, 0x0800), vr: 'US', value: 0x0101 }], IMPLICIT_LITTLE)
  assert.equal([...group], [0, 0, 0, 0, 4, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 8, 2, 0, 0, 0, 1, 1])
  assert.throws(() => writeGroup(0x0002, [{ tag: tag(0x0008, 0x0018), vr: 'UI', value: '1' }]), /not of group 2/)
})

test('refused: one tag twice, a number as another VR than US or UL, a value too long for a 16-bit length', () => {
  const twice: Dataset = [
    { tag: 0x00080018, vr: 'UI', value: '1' },
    { tag: 0x00080018, vr: 'UI', value: '2' }
  ]
  assert.throws(() => writeDataset(twice), /twice/)
  assert.throws(() => writeDataset([{ tag: 0x00280030, vr: 'DS', value: 1 }]), TypeError)
  assert.throws(() => writeDataset([{ tag: 0x00081030, vr: 'LO', value: 'x'.repeat(70_000) }]), /16-bit length/)
  assert.not.throws(() => writeDataset([{ tag: 0x0040a160, vr: 'UT', value: 'x'.repeat(70_000) }]))
})

test('the File Meta Information written for a data set is read back by the Part 10 reader', () => {
  const sop = '1.2.826.0.1.3680043.8.498.1'
  const header = part10Header({
    sopClassUid: CT,
    sopInstanceUid: sop,
    transferSyntaxUid: '1.2.840.10008.1.2',
    sourceAeTitle: ' CT1 '
  })
  assert.ok(
    header.subarray(0, 128).every(b => b === 0),
    'a zero preamble'
  )
  assert.is(header.toString('latin1', 128, 132), 'DICM')
  assert.is(header.readUInt32LE(140), header.length - 144, 'the group length counts the meta elements after it')
  const dataset = writeDataset(
    [
      { tag: 0x00080016, vr: 'UI', value: CT },
      { tag: 0x00080018, vr: 'UI', value: sop },
      { tag: 0x0020000d, vr: 'UI', value: '1.2.3' },
      { tag: 0x0020000e, vr: 'UI', value: '1.2.3.4' }
    ],
    false,
    IMPLICIT_LITTLE
  )
  const instance = parsePart10(Buffer.concat([header, dataset]))
  assert.is(instance.transferSyntaxUid, '1.2.840.10008.1.2')
  assert.is(instance.datasetOffset, header.length)
  assert.is(instance.sopInstanceUid, sop)
  const file = new Part10Reader({ dataset: () => ({}), inflate: 'sync', maxInflatedBytes: 1024 })
  file.push(header)
  file.endSync()
  const elements = file.meta?.elements
  assert.is(elements?.get(0x0002), CT)
  assert.is(elements?.get(0x0013), 'RADMESH_0_1')
  assert.is(elements?.get(0x0016), 'CT1')
})

test.run()

/**
 * The Part 10 reader takes a file in pieces of any size and reads it as it reads the file whole: the File Meta
 * Information is read in place when the first piece holds it (no copy), and kept as a copy when it does not,
 * since a caller may reuse its buffer once `write` returns.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { InstanceParser } from '../../node/dicom/part10.ts'
import { part10Header } from '../../node/dicom/writer.ts'
import { tag, writeDataset } from '../../node/reports/dataset-writer.ts'

const CT = '1.2.840.10008.5.1.4.1.1.2'
const EXPLICIT = '1.2.840.10008.1.2.1'
const SOP = '2.25.7001'

function file(): Buffer {
  const dataset = writeDataset(
    [
      { tag: tag(0x0008, 0x0016), vr: 'UI', value: CT },
      { tag: tag(0x0008, 0x0018), vr: 'UI', value: SOP },
      { tag: tag(0x0008, 0x0060), vr: 'CS', value: 'CT' },
      { tag: tag(0x0010, 0x0010), vr: 'PN', value: 'Pieces^Test' },
      { tag: tag(0x0020, 0x000d), vr: 'UI', value: '2.25.7002' },
      { tag: tag(0x0020, 0x000e), vr: 'UI', value: '2.25.7003' }
    ],
    false
  )
  return Buffer.concat([part10Header({ sopClassUid: CT, sopInstanceUid: SOP, transferSyntaxUid: EXPLICIT }), dataset])
}

function parsed(pieces: number, options: { reuse: boolean }) {
  const whole = file()
  const parser = new InstanceParser()
  const size = Math.ceil(whole.byteLength / pieces)
  const buffer = Buffer.alloc(size)
  for (let at = 0; at < whole.byteLength; at += size) {
    const piece = whole.subarray(at, at + size)
    if (!options.reuse) {
      parser.write(piece)
      continue
    }
    // One buffer for every piece, overwritten once `write` returns (as a socket reader's would be).
    piece.copy(buffer)
    parser.write(buffer.subarray(0, piece.byteLength))
    buffer.fill(0xee)
  }
  return parser.finishSync()
}

test('a file written whole, or in pieces into a reused buffer, reads the same', () => {
  const expected = parsed(1, { reuse: false })
  assert.is(expected.sopInstanceUid, SOP)
  assert.is(expected.attributes['00100010'] !== undefined, true, 'the data set was read')
  for (const pieces of [1, 2, 3, 7, 50, 400]) {
    const got = parsed(pieces, { reuse: true })
    assert.equal(got, expected, `${pieces} pieces`)
  }
})

test('a whole file written at once is not copied: the caller may reuse it afterwards', () => {
  const whole = file()
  const parser = new InstanceParser()
  parser.write(whole)
  const instance = parser.finishSync()
  whole.fill(0)
  assert.is(instance.sopInstanceUid, SOP)
  assert.is(instance.transferSyntaxUid, EXPLICIT)
})

test.run()

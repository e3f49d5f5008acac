/**
 * The DICOM JSON model of hand-made files, for what the pydicom corpus does not have (json-corpus.test.ts
 * converts the corpus): big endian numbers and inline binary, number forms, text padding, values long enough
 * to be quadratic if backtracked over, UN of known tags, the inline/bulk threshold, and structure refused.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { LONG_VRS } from '../../node/dicom/dictionary.ts'
import { InvalidDicomError, type InvalidDicomReason } from '../../node/dicom/errors.ts'
import { instanceToDicomJson } from '../../node/dicom/json.ts'

const uri = (tag: string): string => `bulk:${tag}`

function throwsInvalid(fn: () => unknown, reason: InvalidDicomReason, what: string): void {
  try {
    fn()
  } catch (error) {
    assert.instance(error, InvalidDicomError, `${what}: ${String(error)}`)
    assert.is((error as InvalidDicomError).reason, reason, what)
    assert.is((error as InvalidDicomError).code, 'RADMESH_INVALID_DICOM')
    return
  }
  assert.unreachable(`${what}: did not throw`)
}

interface Element {
  tag: number
  vr: string
  value: Uint8Array
}
const ascii = (text: string): Uint8Array => new TextEncoder().encode(text.length % 2 === 0 ? text : `${text} `)

function encodeElements(elements: Element[], little: boolean, implicit = false): Uint8Array {
  const chunks: Uint8Array[] = []
  for (const { tag, vr, value } of elements) {
    const long = LONG_VRS.has(vr)
    const header = new DataView(new ArrayBuffer(implicit ? 8 : long ? 12 : 8))
    header.setUint16(0, tag >>> 16, little)
    header.setUint16(2, tag & 0xffff, little)
    if (implicit) {
      header.setUint32(4, value.length, little)
    } else {
      header.setUint8(4, vr.charCodeAt(0))
      header.setUint8(5, vr.charCodeAt(1))
      if (long) header.setUint32(8, value.length, little)
      else header.setUint16(6, value.length, little)
    }
    chunks.push(new Uint8Array(header.buffer), value)
  }
  return Buffer.concat(chunks)
}

function part10(transferSyntax: string, dataset: Uint8Array): Uint8Array {
  const meta = encodeElements(
    [
      {
        tag: 0x00020010,
        vr: 'UI',
        value: ascii(transferSyntax.length % 2 === 0 ? transferSyntax : `${transferSyntax}\0`)
      }
    ],
    true
  )
  return Buffer.concat([new Uint8Array(128), ascii('DICM'), meta, dataset])
}

function bytes(size: number, write: (view: DataView) => void): Uint8Array {
  const view = new DataView(new ArrayBuffer(size))
  write(view)
  return new Uint8Array(view.buffer)
}

test('big endian: numbers read in big endian, short OW inline binary swapped to little endian', () => {
  const dataset = encodeElements(
    [
      {
        tag: 0x00280010,
        vr: 'US',
        value: bytes(2, v => {
          v.setUint16(0, 512, false)
        })
      },
      {
        tag: 0x00189219,
        vr: 'SS',
        value: bytes(4, v => {
          v.setInt16(0, -3, false)
          v.setInt16(2, 7, false)
        })
      },
      { tag: 0x00181310, vr: 'US', value: bytes(0, () => {}) },
      {
        tag: 0x00283006,
        vr: 'OW',
        value: bytes(4, v => {
          v.setUint16(0, 0x0102, false)
          v.setUint16(2, 0x0304, false)
        })
      },
      {
        tag: 0x00660016,
        vr: 'OF',
        value: bytes(4, v => {
          v.setFloat32(0, 1.5, false)
        })
      }
    ],
    false
  )
  const json = instanceToDicomJson(part10('1.2.840.10008.1.2.2', dataset), uri)
  assert.equal(json['00280010'], { vr: 'US', Value: [512] })
  assert.equal(json['00189219'], { vr: 'SS', Value: [-3, 7] })
  assert.equal(json['00181310'], { vr: 'US' })
  assert.equal(json['00283006'], { vr: 'OW', InlineBinary: Buffer.from([0x02, 0x01, 0x04, 0x03]).toString('base64') })
  assert.equal(json['00660016'], {
    vr: 'OF',
    InlineBinary: Buffer.from(
      bytes(4, v => {
        v.setFloat32(0, 1.5, true)
      })
    ).toString('base64')
  })
})

test('numbers: FL/FD NaN and infinities as strings, SV/UV beyond 2^53 as decimal strings, DS forms', () => {
  const dataset = encodeElements(
    [
      {
        tag: 0x00089459,
        vr: 'FL',
        value: bytes(8, v => {
          v.setFloat32(0, Number.NaN, true)
          v.setFloat32(4, 0.5, true)
        })
      },
      {
        tag: 0x00189087,
        vr: 'FD',
        value: bytes(16, v => {
          v.setFloat64(0, Number.POSITIVE_INFINITY, true)
          v.setFloat64(8, -2.25, true)
        })
      },
      { tag: 0x00181151, vr: 'IS', value: ascii(' 170 \\-3') },
      { tag: 0x00280030, vr: 'DS', value: ascii('1.5e2\\.25\\-0.5 \\abc') },
      {
        tag: 0x00720082,
        vr: 'SV',
        value: bytes(16, v => {
          v.setBigInt64(0, -5n, true)
          v.setBigInt64(8, 2n ** 60n, true)
        })
      },
      {
        tag: 0x00720083,
        vr: 'UV',
        value: bytes(8, v => {
          v.setBigUint64(0, 2n ** 64n - 1n, true)
        })
      }
    ],
    true
  )
  const json = instanceToDicomJson(part10('1.2.840.10008.1.2.1', dataset), uri)
  assert.equal(json['00089459'], { vr: 'FL', Value: ['NaN', 0.5] })
  assert.equal(json['00189087'], { vr: 'FD', Value: ['Infinity', -2.25] })
  assert.equal(json['00181151'], { vr: 'IS', Value: [170, -3] })
  assert.equal(json['00280030'], { vr: 'DS', Value: [150, 0.25, -0.5, 'abc'] })
  assert.equal(json['00720082'], { vr: 'SV', Value: [-5, (2n ** 60n).toString()] })
  assert.equal(json['00720083'], { vr: 'UV', Value: [(2n ** 64n - 1n).toString()] })
  assert.ok(JSON.parse(JSON.stringify(json)), 'the result is plain JSON')
})

test('text: trailing padding trimmed, LT/ST/UT kept whole with leading spaces, PN groups, UI NUL padding', () => {
  const dataset = encodeElements(
    [
      { tag: 0x00080018, vr: 'UI', value: ascii('1.2.3\0') },
      { tag: 0x00081030, vr: 'LO', value: ascii(' Chest CT  ') },
      { tag: 0x00104000, vr: 'LT', value: ascii('  line one\\still one  ') },
      { tag: 0x00100010, vr: 'PN', value: ascii('Doe^John\\=Ideo^Graphic\\') },
      { tag: 0x00081190, vr: 'UR', value: ascii('http://x/a\\b ') }
    ],
    true
  )
  const json = instanceToDicomJson(part10('1.2.840.10008.1.2.1', dataset), uri)
  assert.equal(json['00080018'], { vr: 'UI', Value: ['1.2.3'] })
  assert.equal(json['00081030'], { vr: 'LO', Value: ['Chest CT'] })
  assert.equal(json['00104000'], { vr: 'LT', Value: ['  line one\\still one'] })
  assert.equal(json['00100010'], {
    vr: 'PN',
    Value: [{ Alphabetic: 'Doe^John' }, { Ideographic: 'Ideo^Graphic' }, null]
  })
  assert.equal(json['00081190'], { vr: 'UR', Value: ['http://x/a\\b'] })
})

test('long text and number values convert in linear time: padding and number forms are not backtracked over', () => {
  // Implicit VR: every element has a 4-byte length, so these values are inlined (up to 1 MiB), not bulk data.
  const n = 200_000
  const dataset = encodeElements(
    [
      { tag: 0x00081030, vr: 'LO', value: ascii(`${' '.repeat(n)}x`) },
      { tag: 0x00100010, vr: 'PN', value: ascii(`${' '.repeat(n)}x`) },
      { tag: 0x00104000, vr: 'LT', value: ascii(`${'\0'.repeat(n)}x`) },
      { tag: 0x00280030, vr: 'DS', value: ascii(`${'1'.repeat(n)}x`) }
    ],
    true,
    true
  )
  const started = performance.now()
  const json = instanceToDicomJson(part10('1.2.840.10008.1.2', dataset), uri)
  const elapsed = performance.now() - started
  assert.ok(elapsed < 500, `converted in ${elapsed.toFixed(0)} ms`)
  assert.equal(json['00081030'], { vr: 'LO', Value: ['x'] })
  assert.equal(json['00100010'], { vr: 'PN', Value: [{ Alphabetic: `${' '.repeat(n)}x` }] })
  assert.is(String(json['00104000']?.Value?.[0]).length, n + 1)
  assert.equal(json['00280030'], { vr: 'DS', Value: [`${'1'.repeat(n)}x`] })
})

test('UN of a known tag is decoded with its VR; group lengths and trailing padding are left out', () => {
  const dataset = encodeElements(
    [
      {
        tag: 0x00080000,
        vr: 'UL',
        value: bytes(4, v => {
          v.setUint32(0, 99, true)
        })
      },
      { tag: 0x00080060, vr: 'UN', value: ascii('MR') },
      {
        tag: 0x00280010,
        vr: 'UN',
        value: bytes(2, v => {
          v.setUint16(0, 64, true)
        })
      },
      { tag: 0x00091001, vr: 'UN', value: ascii('??') },
      { tag: 0xfffcfffc, vr: 'OB', value: new Uint8Array(6) }
    ],
    true
  )
  const json = instanceToDicomJson(part10('1.2.840.10008.1.2.1', dataset), uri)
  assert.equal(json, {
    '00080060': { vr: 'CS', Value: ['MR'] },
    '00280010': { vr: 'US', Value: [64] },
    '00091001': { vr: 'UN', InlineBinary: Buffer.from('??').toString('base64') }
  })
})

test('binary values: 1024 bytes inline, 1025 bytes bulk', () => {
  const dataset = encodeElements(
    [
      { tag: 0x00431028, vr: 'OB', value: new Uint8Array(1024).fill(7) },
      { tag: 0x00431029, vr: 'OB', value: new Uint8Array(1026).fill(7) }
    ],
    true
  )
  const json = instanceToDicomJson(part10('1.2.840.10008.1.2.1', dataset), uri)
  assert.is(Buffer.from(json['00431028']?.InlineBinary ?? '', 'base64').length, 1024)
  assert.equal(json['00431029'], { vr: 'OB', BulkDataURI: 'bulk:00431029' })
})

test('a sequence without items and a deflated data set that does not inflate are refused', () => {
  const badItem = encodeElements(
    [
      {
        tag: 0x00081115,
        vr: 'SQ',
        value: bytes(8, v => {
          v.setUint32(0, 0x00100010, true)
        })
      }
    ],
    true
  )
  throwsInvalid(
    () => instanceToDicomJson(part10('1.2.840.10008.1.2.1', badItem), uri),
    'bad-structure',
    'a sequence without items'
  )
  const deflatedGarbage = part10('1.2.840.10008.1.2.1.99', new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]))
  throwsInvalid(() => instanceToDicomJson(deflatedGarbage, uri), 'bad-deflate', 'bad deflate stream')
})

test('deeply nested sequences are refused, not a stack overflow', () => {
  // 200 nested sequences of undefined length, each with one item of undefined length.
  const open = encodeElements([{ tag: 0x00081115, vr: 'SQ', value: new Uint8Array(0) }], true)
  new DataView(open.buffer, open.byteOffset).setUint32(8, 0xffffffff, true)
  const item = bytes(8, v => {
    v.setUint16(0, 0xfffe, true)
    v.setUint16(2, 0xe000, true)
    v.setUint32(4, 0xffffffff, true)
  })
  const chunks: Uint8Array[] = []
  for (let i = 0; i < 200; i++) chunks.push(open, item)
  throwsInvalid(
    () => instanceToDicomJson(part10('1.2.840.10008.1.2.1', Buffer.concat(chunks)), uri),
    'too-deep',
    'deep nesting'
  )
})

test.run()

/**
 * Chunks on the wire of `/radmesh/chunks/2.0.0`: the frame codec (round trips, and what it refuses), and
 * packing (a compressible chunk packed and unpacked to the manifest's bytes, an incompressible one left
 * sealed, a packed chunk that was altered, moved or made for another size refused).
 */
import { randomBytes } from 'node:crypto'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { packChunk, unpackChunk } from '../../node/exchange/packing.ts'
import { checkChunk } from '../../node/exchange/verify.ts'
import {
  CHUNK_FORM,
  CHUNK_FRAME_2_HEADER_BYTES,
  decodeChunkFrame2,
  encodeChunkFrame2Header,
  PACK_MIN_SAVING
} from '../../protocol/exchange/chunks.ts'
import { CHUNK_FRAME_BYTES, FRAME_STATUS } from '../../protocol/exchange/messages.ts'
import { member, STUDY, version } from './helpers.ts'

const site = await member()
const frame = (header: Parameters<typeof encodeChunkFrame2Header>[0], body: Uint8Array): Uint8Array =>
  Buffer.concat([encodeChunkFrame2Header(header), body])

/** 16-bit samples of a smooth image with a little noise, as CT pixel data compresses. */
function imageLike(bytes: number): Buffer {
  const out = Buffer.alloc(bytes)
  for (let i = 0; i + 1 < bytes; i += 2) out.writeUInt16LE(1000 + Math.round(200 * Math.sin(i / 5000)) + (i % 7), i)
  return out
}

test('a frame of each form and a not-held frame round-trip through the codec', () => {
  const body = randomBytes(1000)
  const roundTrip = (header: Parameters<typeof encodeChunkFrame2Header>[0], bytes: Uint8Array): void => {
    const { bytes: decodedBytes, ...decoded } = decodeChunkFrame2(frame(header, bytes))
    assert.equal(decoded, header)
    assert.ok(Buffer.from(decodedBytes).equals(bytes))
  }
  roundTrip({ status: FRAME_STATUS.data, index: 7, offset: 0, form: CHUNK_FORM.packed, length: 5000 }, body)
  roundTrip({ status: FRAME_STATUS.data, index: 3, offset: 32768, form: CHUNK_FORM.sealed, length: 40_000 }, body)
  roundTrip({ status: FRAME_STATUS.notHeld, index: 9, offset: 12, form: CHUNK_FORM.sealed, length: 0 }, Buffer.alloc(0))
})

test('malformed frames are refused: unknown status or form, past the length, empty data, a not-held with bytes', () => {
  const ok = { status: FRAME_STATUS.data, index: 1, offset: 0, form: CHUNK_FORM.sealed, length: 100 }
  const cases: Array<[string, Uint8Array]> = [
    ['short header', new Uint8Array(CHUNK_FRAME_2_HEADER_BYTES - 1)],
    ['too long', new Uint8Array(CHUNK_FRAME_2_HEADER_BYTES + CHUNK_FRAME_BYTES + 1)],
    ['status 2', frame({ ...ok, status: 2 as never }, new Uint8Array(10))],
    ['form 2', frame({ ...ok, form: 2 as never }, new Uint8Array(10))],
    ['past the length', frame({ ...ok, offset: 95 }, new Uint8Array(10))],
    ['empty data frame', frame(ok, new Uint8Array(0))],
    ['packed shorter than nonce and tag', frame({ ...ok, form: CHUNK_FORM.packed, length: 20 }, new Uint8Array(10))],
    ['not-held with bytes', frame({ ...ok, status: FRAME_STATUS.notHeld }, new Uint8Array(1))],
    ['not-held with a length', frame({ ...ok, status: FRAME_STATUS.notHeld }, new Uint8Array(0))]
  ]
  for (const [what, bytes] of cases) {
    assert.throws(
      () => decodeChunkFrame2(bytes),
      (error: Error) => error.name === 'MalformedMessageError',
      what
    )
  }
})

test("a compressible chunk is packed smaller; unpacked it is checked as the manifest's instance", async () => {
  const file = imageLike(300_000)
  const study = await version(site, [file])
  const { manifest, key } = study
  const place = { studyUid: STUDY, versionId: manifest.versionId, index: 0, last: true }
  const packed = await packChunk(key, place, file)
  assert.ok(packed !== undefined && packed.byteLength < (1 - PACK_MIN_SAVING) * file.byteLength, 'packed smaller')
  assert.ok((await unpackChunk(key, place, packed, file.byteLength)).equals(file))
  const checked = await checkChunk(study, 0, CHUNK_FORM.packed, packed)
  assert.ok(checked !== undefined && 'instance' in checked && checked.instance.equals(file), 'checked: the instance')
})

test('an incompressible chunk is not packed', async () => {
  const file = randomBytes(200_000)
  const study = await version(site, [file])
  const place = { studyUid: STUDY, versionId: study.manifest.versionId, index: 0, last: true }
  assert.is(await packChunk(study.key, place, file), undefined)
})

test('a packed chunk altered, moved to another place, under another key or of another size is refused', async () => {
  const file = imageLike(100_000)
  const study = await version(site, [file])
  const place = { studyUid: STUDY, versionId: study.manifest.versionId, index: 0, last: true }
  const packed = (await packChunk(study.key, place, file)) as Buffer
  const altered = Buffer.from(packed)
  altered[20] = (altered[20] as number) ^ 1
  const refused = async (what: string, unpacking: Promise<Buffer>): Promise<void> => {
    assert.is(
      await unpacking.then(
        () => 'unpacked',
        () => 'refused'
      ),
      'refused',
      what
    )
  }
  await refused('altered', unpackChunk(study.key, place, altered, file.byteLength))
  await refused('another index', unpackChunk(study.key, { ...place, index: 1 }, packed, file.byteLength))
  await refused('not the last', unpackChunk(study.key, { ...place, last: false }, packed, file.byteLength))
  await refused('another key', unpackChunk(randomBytes(32), place, packed, file.byteLength))
  await refused('more than the manifest says', unpackChunk(study.key, place, packed, file.byteLength - 1))
  await refused('less than the manifest says', unpackChunk(study.key, place, packed, file.byteLength + 1))
})

test.run()

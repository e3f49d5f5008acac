/**
 * Declared values are never trusted as sizes, and no object costs the node more memory than a few chunks:
 * frame counts are checked against the pixel data, a deflate bomb stops at the size limit while inflating
 * off the event loop, a large object goes to disk as it arrives and comes back whole, chunk by chunk.
 */
import { createHash, randomBytes } from 'node:crypto'
import { deflateRawSync, constants as zlib } from 'node:zlib'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { InstanceRecord } from '../../node/archive/archive.ts'
import { CHUNK_SIZE } from '../../node/archive/index.ts'
import { MAX_IN_FLIGHT } from '../../node/archive/incoming.ts'
import { InvalidDicomError } from '../../node/dicom/errors.ts'
import { BOMB_FLOOR, BOMB_RATIO } from '../../node/dicom/inflate.ts'
import { dicomJsonOf } from '../../node/dicom/json.ts'
import { InstanceParser, part10Header } from '../../node/dicom/part10.ts'
import { frameCount, planFrames } from '../../node/http/dicomweb/frames.ts'
import { type Dataset, tag, writeDataset } from '../../node/reports/dataset-writer.ts'
import { openArchive } from '../helpers/archive.ts'
import { tempDir } from '../../scripts/lib/temp.ts'

const actor = { type: 'cli', id: 'test' } as const
const CT = '1.2.840.10008.5.1.4.1.1.2'
const EXPLICIT = '1.2.840.10008.1.2.1'
const DEFLATED = '1.2.840.10008.1.2.1.99'
const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')
let uidCounter = 0
const uid = (): string => `2.25.${Date.now()}${process.pid}${++uidCounter}`

/** A CT data set's elements before its pixel data; `frames` is written as Number of Frames when given. */
function image(options: { sop: string; frames?: string; rows?: number; columns?: number }): Dataset {
  return [
    { tag: tag(0x0008, 0x0016), vr: 'UI', value: CT },
    { tag: tag(0x0008, 0x0018), vr: 'UI', value: options.sop },
    { tag: tag(0x0008, 0x0060), vr: 'CS', value: 'CT' },
    { tag: tag(0x0010, 0x0010), vr: 'PN', value: 'Bounded^Test' },
    { tag: tag(0x0020, 0x000d), vr: 'UI', value: '2.25.1001' },
    { tag: tag(0x0020, 0x000e), vr: 'UI', value: '2.25.1002' },
    { tag: tag(0x0028, 0x0002), vr: 'US', value: 1 },
    { tag: tag(0x0028, 0x0004), vr: 'CS', value: 'MONOCHROME2' },
    ...(options.frames === undefined ? [] : [{ tag: tag(0x0028, 0x0008), vr: 'IS', value: options.frames }]),
    { tag: tag(0x0028, 0x0010), vr: 'US', value: options.rows ?? 64 },
    { tag: tag(0x0028, 0x0011), vr: 'US', value: options.columns ?? 64 },
    { tag: tag(0x0028, 0x0100), vr: 'US', value: 16 },
    { tag: tag(0x0028, 0x0101), vr: 'US', value: 16 },
    { tag: tag(0x0028, 0x0103), vr: 'US', value: 0 }
  ]
}

/** The header of a native Pixel Data element of `length` bytes (explicit VR little endian, OW). */
function pixelDataHeader(length: number): Buffer {
  const header = Buffer.alloc(12)
  header.writeUInt16LE(0x7fe0, 0)
  header.writeUInt16LE(0x0010, 2)
  header.write('OW', 4, 'latin1')
  header.writeUInt32LE(length, 8)
  return header
}

function file(sop: string, dataset: Uint8Array, syntax = EXPLICIT): Buffer {
  return Buffer.concat([part10Header({ sopClassUid: CT, sopInstanceUid: sop, transferSyntaxUid: syntax }), dataset])
}

test(
  'an image that declares a billion frames is refused at ingest, ' +
    'with the reason; one frame of pixel data is served as one',
  async () => {
    const home = await tempDir()
    const { archive, close } = await openArchive(home)
    try {
      for (const frames of ['1000000000', '100000000', '2']) {
        const sop = uid()
        const bytes = file(
          sop,
          Buffer.concat([writeDataset(image({ sop, frames }), false), pixelDataHeader(8192), Buffer.alloc(8192)])
        )
        const refused = await archive.store(bytes, actor).then(
          () => undefined,
          (error: unknown) => error
        )
        assert.instance(refused, InvalidDicomError, `${frames} frames`)
        assert.is((refused as InvalidDicomError).reason, 'bad-pixel-data')
        assert.match((refused as Error).message, new RegExp(`Number of Frames is ${frames}`))
        assert.is(await archive.instance(sop), undefined)
      }
      const sop = uid()
      const { instance } = await archive.store(
        file(
          sop,
          Buffer.concat([writeDataset(image({ sop, frames: '1' }), false), pixelDataHeader(8192), Buffer.alloc(8192)])
        ),
        actor
      )
      assert.is(frameCount(instance), 1)
    } finally {
      await close()
    }
    // An instance stored before the check (its record as the index holds it): served with what it holds.
    const planted = {
      sopUid: '2.25.9',
      transferSyntaxUid: EXPLICIT,
      datasetOffset: 200,
      size: 200 + 8192 + 300,
      pixelData: { encapsulated: false, offset: 300, length: 8192 },
      attributes: { '00280008': '1000000000', '00280010': '64', '00280011': '64', '00280002': '1', '00280100': '16' }
    } as unknown as InstanceRecord
    const started = performance.now()
    assert.is(frameCount(planted), 1)
    assert.throws(
      () => planFrames(planted, [2]),
      (error: Error & { code?: string }) => error.code === 'RADMESH_NOT_FOUND'
    )
    assert.ok(performance.now() - started < 50, 'answered without building a billion of anything')
  }
)

test('encapsulated pixel data: more frames declared than fragments is refused', async () => {
  const sop = uid()
  const fragment = (bytes: Uint8Array): Buffer => {
    const header = Buffer.alloc(8)
    header.writeUInt16LE(0xfffe, 0)
    header.writeUInt16LE(0xe000, 2)
    header.writeUInt32LE(bytes.byteLength, 4)
    return Buffer.concat([header, bytes])
  }
  const pixelData = Buffer.concat([
    Buffer.from([0xe0, 0x7f, 0x10, 0x00, 0x4f, 0x42, 0, 0, 0xff, 0xff, 0xff, 0xff]),
    fragment(new Uint8Array()),
    fragment(Buffer.alloc(100)),
    Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0])
  ])
  const parser = new InstanceParser()
  parser.write(
    Buffer.concat([
      part10Header({ sopClassUid: CT, sopInstanceUid: sop, transferSyntaxUid: '1.2.840.10008.1.2.5' }),
      writeDataset(image({ sop, frames: '50000' }), false),
      pixelData
    ])
  )
  assert.throws(
    () => parser.finishSync(),
    (error: InvalidDicomError) => error.reason === 'bad-pixel-data' && /2 fragment|1 fragment/.test(error.message)
  )
})

/** A raw deflate stream of `header` then `zeroes` zero bytes, built from one compressed block repeated (fast). */
function deflateBomb(header: Uint8Array, zeroes: number): Buffer {
  const step = 64 * 1024 * 1024
  if (zeroes % step !== 0) throw new Error('whole steps only')
  const start = deflateRawSync(header, { finishFlush: zlib.Z_FULL_FLUSH })
  const block = deflateRawSync(Buffer.alloc(step), { level: 9, finishFlush: zlib.Z_FULL_FLUSH })
  return Buffer.concat([start, ...Array.from({ length: zeroes / step }, () => block), Buffer.from([0x03, 0x00])])
}

test(
  'a deflate bomb stops at the size limit: refused ' + 'too-large, inflated off the event loop, memory flat',
  async () => {
    const sop = uid()
    const header = Buffer.concat([writeDataset(image({ sop }), false), pixelDataHeader(0xfffffff0)])
    const bomb = deflateBomb(header, 4 * 1024 * 1024 * 1024)
    assert.ok(bomb.byteLength < 8 * 1024 * 1024, `the bomb is ${bomb.byteLength} bytes`)
    const parser = new InstanceParser({ inflate: 'async', maxInflatedBytes: 512 * 1024 * 1024 })
    let worstLag = 0
    let last = performance.now()
    const ticker = setInterval(() => {
      const now = performance.now()
      worstLag = Math.max(worstLag, now - last - 5)
      last = now
    }, 5)
    const rssBefore = process.memoryUsage.rss()
    let peak = rssBefore
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage.rss())
    }, 20)
    try {
      const whole = file(sop, bomb, DEFLATED)
      for (let at = 0; at < whole.byteLength; at += 65_536) parser.write(whole.subarray(at, at + 65_536))
      const refused = await parser.finish().then(
        () => undefined,
        (error: unknown) => error
      )
      assert.instance(refused, InvalidDicomError)
      assert.is((refused as InvalidDicomError).reason, 'too-large')
      assert.match((refused as Error).message, 'deflate bomb', 'refused by its ratio, before the size limit')
    } finally {
      clearInterval(ticker)
      clearInterval(sampler)
    }
    // Inflating the 512 MiB on the event loop would stall it for seconds (about 12 s here under load, 1 s or
    // more on a quiet machine); a scheduler under load has stalled it 234 ms with the work off the loop.
    assert.ok(worstLag < 1000, `the event loop stalled ${worstLag.toFixed(0)} ms`)
    assert.ok(peak - rssBefore < 128 * 1024 * 1024, `RSS grew ${((peak - rssBefore) / 1e6).toFixed(0)} MB`)
  }
)

test(`a deflated data set past ${BOMB_FLOOR / 2 ** 20} MiB that inflates 26 to 1 (not a bomb) is taken whole`, async () => {
  const sop = uid()
  const frames = 35
  const pixels = Buffer.alloc(frames * 1024 * 1024 * 2)
  const noise = randomBytes(pixels.byteLength / 64)
  for (let i = 0; i < noise.byteLength; i++) pixels[i * 64] = noise[i] as number
  const dataset = Buffer.concat([
    writeDataset(image({ sop, frames: String(frames), rows: 1024, columns: 1024 }), false),
    pixelDataHeader(pixels.byteLength),
    pixels
  ])
  assert.ok(dataset.byteLength > BOMB_FLOOR)
  const deflated = deflateRawSync(dataset, { level: 1 })
  assert.ok(dataset.byteLength / deflated.byteLength < BOMB_RATIO / 4, 'well under the ratio')
  const parser = new InstanceParser({ inflate: 'async', maxInflatedBytes: 512 * 1024 * 1024 })
  const whole = file(sop, deflated, DEFLATED)
  for (let at = 0; at < whole.byteLength; at += 65_536) parser.write(whole.subarray(at, at + 65_536))
  await parser.finish()
})

test(
  'a large object spills to disk as it arrives (writes wait ' + 'for drain), and comes back whole, a chunk at a time',
  async () => {
    const home = await tempDir()
    const { archive, close } = await openArchive(home)
    try {
      const sop = uid()
      const frames = 100
      const frameBytes = 1024 * 1024 * 2 // 1024 x 1024 x 16 bits
      const head = file(
        sop,
        Buffer.concat([
          writeDataset(image({ sop, frames: String(frames), rows: 1024, columns: 1024 }), false),
          pixelDataHeader(frames * frameBytes)
        ])
      )
      const incoming = archive.incoming(sop)
      const whole = createHash('sha256').update(head)
      incoming.write(head)
      let waited = 0
      const frameHashes: string[] = []
      const rssBefore = process.memoryUsage.rss()
      let peak = rssBefore
      for (let f = 0; f < frames; f++) {
        const frame = randomBytes(frameBytes)
        frameHashes.push(sha256(frame))
        whole.update(frame)
        for (let at = 0; at < frame.byteLength; at += 65_536) {
          if (!incoming.write(frame.subarray(at, at + 65_536))) {
            waited++
            await incoming.drain()
          }
        }
        peak = Math.max(peak, process.memoryUsage.rss())
      }
      const { instance } = await archive.storeIncoming(incoming, actor)
      assert.is(instance.sha256, whole.digest('hex'))
      assert.is(instance.chunks.length, Math.ceil(instance.size / CHUNK_SIZE))
      assert.ok(waited > 0, 'the writer was told to wait for the disk at least once')
      assert.ok(
        peak - rssBefore < 4 * MAX_IN_FLIGHT + 64 * 1024 * 1024,
        `RSS grew ${((peak - rssBefore) / 1e6).toFixed(0)} MB for an ${(instance.size / 1e6).toFixed(0)} MB object`
      )

      const back = createHash('sha256')
      for await (const chunk of archive.chunksOf(instance)) back.update(chunk)
      assert.is(back.digest('hex'), instance.sha256)
      let frame7: Uint8Array | undefined
      for await (const frame of planFrames(instance, [7]).frames(archive)) frame7 = frame.body
      assert.is(sha256(frame7 as Uint8Array), frameHashes[6])
      // Metadata reads the chunks before and after the pixel data, not the pixel data.
      let read = 0
      const counting = async function* () {
        for (let i = 0; i < instance.chunks.length; i++) {
          const start = i * CHUNK_SIZE
          const end = Math.min(instance.size, start + CHUNK_SIZE)
          const inside = start >= instance.datasetOffset + (instance.pixelData as { offset: number }).offset
          if (inside) {
            yield {
              skip: end - start,
              read: async () => {
                read++
                return await archive.readRange(instance, start, end)
              }
            }
          } else {
            read++
            yield await archive.readRange(instance, start, end)
          }
        }
      }
      const json = await dicomJsonOf(counting(), path => `bulk/${path}`)
      assert.equal(json['00280008'], { vr: 'IS', Value: [100] })
      assert.equal(json['7FE00010'], { vr: 'OW', BulkDataURI: 'bulk/7FE00010' })
      assert.ok(read <= 2, `${read} chunks read for the metadata of a ${instance.chunks.length}-chunk object`)
    } finally {
      await close()
    }
  }
)

test('an object that spills, written in pieces of 100 bytes, comes back whole', async () => {
  const home = await tempDir()
  const { archive, close } = await openArchive(home)
  try {
    const sop = uid()
    const frames = 3
    const frameBytes = 1024 * 1024 * 2
    const pixels = randomBytes(frames * frameBytes)
    const bytes = Buffer.concat([
      file(
        sop,
        Buffer.concat([
          writeDataset(image({ sop, frames: String(frames), rows: 1024, columns: 1024 }), false),
          pixelDataHeader(pixels.byteLength)
        ])
      ),
      pixels
    ])
    const incoming = archive.incoming(sop)
    for (let at = 0; at < bytes.byteLength; at += 100) {
      if (!incoming.write(bytes.subarray(at, at + 100))) await incoming.drain()
    }
    const { instance } = await archive.storeIncoming(incoming, actor)
    assert.is(instance.sha256, sha256(bytes))
    const back = createHash('sha256')
    for await (const chunk of archive.chunksOf(instance)) back.update(chunk)
    assert.is(back.digest('hex'), sha256(bytes))
  } finally {
    await close()
  }
})

test('an object that is not the instance its sender announced is refused before anything of it is stored', async () => {
  const home = await tempDir()
  const { archive, close } = await openArchive(home)
  try {
    const sop = uid()
    const bytes = file(
      sop,
      Buffer.concat([writeDataset(image({ sop }), false), pixelDataHeader(8192), Buffer.alloc(8192)])
    )
    for (const expected of [
      { sopClassUid: CT, sopInstanceUid: `${sop}.9` },
      { sopClassUid: '1.2.840.10008.5.1.4.1.1.4', sopInstanceUid: sop }
    ]) {
      const incoming = archive.incoming(expected.sopInstanceUid)
      incoming.write(bytes)
      const refused = await archive.storeIncoming(incoming, actor, expected).then(
        () => undefined,
        (error: unknown) => error
      )
      assert.instance(refused, InvalidDicomError)
      assert.is((refused as InvalidDicomError).reason, 'not-as-announced')
      assert.is(await archive.instance(sop), undefined, 'nothing stored')
    }
  } finally {
    await close()
  }
})

test(
  'a bad object that would spill is dropped as soon as ' + 'it is known bad: nothing more is kept or written',
  async () => {
    const home = await tempDir()
    const { archive, close } = await openArchive(home)
    try {
      const incoming = archive.incoming()
      incoming.write(
        Buffer.concat([
          part10Header({ sopClassUid: CT, sopInstanceUid: '2.25.5', transferSyntaxUid: EXPLICIT }),
          Buffer.from('garbage!')
        ])
      )
      const junk = Buffer.alloc(1024 * 1024, 0x41)
      for (let i = 0; i < 64; i++) assert.ok(incoming.write(junk))
      const refused = await archive.storeIncoming(incoming, actor).then(
        () => undefined,
        (error: unknown) => error
      )
      assert.instance(refused, InvalidDicomError)
      assert.is((refused as InvalidDicomError).reason, 'bad-vr')
    } finally {
      await close()
    }
  }
)

test.run()

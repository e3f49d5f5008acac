/**
 * IncomingObject: an object written in pieces of any size comes out with the same hashes and chunks as
 * when written whole, every sealed chunk opens to its plaintext, and an oversized object is refused at finish.
 */
import { createHash, randomBytes } from 'node:crypto'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { CHUNK_SIZE } from '../../node/archive/index.ts'
import { IncomingObject, ObjectTooLargeError } from '../../node/archive/incoming.ts'
import { CHUNK_ASSOCIATED_DATA, StorageKey } from '../../node/archive/sealing.ts'

const key = new StorageKey(randomBytes(32))
const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')

function writeInPieces(object: IncomingObject, bytes: Buffer, sizes: () => number): void {
  for (let offset = 0; offset < bytes.byteLength; ) {
    const size = Math.min(sizes(), bytes.byteLength - offset)
    object.write(bytes.subarray(offset, offset + size))
    offset += size
  }
}

test(
  'pieces of any size: same bytes, whole hash, chunk ids ' + 'and chunk plaintexts as the object cut at CHUNK_SIZE',
  () => {
    const bytes = randomBytes(2 * CHUNK_SIZE + 12_345)
    const expectedIds = [0, 1, 2].map(i => sha256(bytes.subarray(i * CHUNK_SIZE, (i + 1) * CHUNK_SIZE)))
    let seed = 7
    const randomSize = (): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      return 1 + (seed % 200_000)
    }
    // whole; TCP-read sized; bytes one at a time at first, then large; random sizes across chunk edges
    let written = 0
    const byteThenLarge = (): number => (++written <= 1000 ? 1 : 300_000)
    for (const sizes of [() => bytes.byteLength, () => 65_536, byteThenLarge, randomSize]) {
      const object = new IncomingObject(key, 10 * CHUNK_SIZE)
      writeInPieces(object, bytes, sizes)
      const received = object.finish()
      assert.ok(received.bytes.equals(bytes), 'the same bytes')
      assert.is(received.sha256, sha256(bytes))
      assert.equal(
        received.chunks.map(c => c.id),
        expectedIds
      )
      received.chunks.forEach((chunk, i) => {
        const sealed = Buffer.concat(chunk.sealed)
        assert.is(sealed.byteLength, chunk.sealedLength)
        assert.ok(
          key.open(sealed, CHUNK_ASSOCIATED_DATA).equals(bytes.subarray(i * CHUNK_SIZE, (i + 1) * CHUNK_SIZE)),
          `chunk ${i} opens to its plaintext`
        )
      })
    }
  }
)

test('an object of exactly CHUNK_SIZE is one chunk; an empty object is one empty chunk', () => {
  const exact = new IncomingObject(key, CHUNK_SIZE)
  exact.write(randomBytes(CHUNK_SIZE))
  assert.is(exact.finish().chunks.length, 1)
  const empty = new IncomingObject(key, CHUNK_SIZE).finish()
  assert.equal(
    empty.chunks.map(c => c.id),
    [sha256(new Uint8Array())]
  )
  assert.is(empty.bytes.byteLength, 0)
})

test('seal() gives the sealed chunks with the last id still to take; identify() takes it, as finish() would', () => {
  const bytes = randomBytes(CHUNK_SIZE + 5000)
  const object = new IncomingObject(key, 4 * CHUNK_SIZE)
  writeInPieces(object, bytes, () => 70_000)
  const sealed = object.seal()
  assert.ok(sealed.bytes?.equals(bytes))
  assert.equal(
    sealed.chunks.map(chunk => (chunk as { id?: string }).id),
    [sha256(bytes.subarray(0, CHUNK_SIZE)), undefined],
    'a chunk that filled is hashed as it arrives; the last one is not'
  )
  assert.throws(() => {
    object.write(randomBytes(10))
  }, /write after seal/)
  const received = object.identify()
  assert.equal(
    received.chunks.map(chunk => chunk.id),
    [sha256(bytes.subarray(0, CHUNK_SIZE)), sha256(bytes.subarray(CHUNK_SIZE))]
  )
  assert.is(received.sha256, sha256(bytes))
  assert.ok(
    key
      .open(Buffer.concat((received.chunks[1] as { sealed: Buffer[] }).sealed), CHUNK_ASSOCIATED_DATA)
      .equals(bytes.subarray(CHUNK_SIZE))
  )
  assert.is(object.identify(), received, 'taken once')
})

test('past the limit, the rest is dropped and finish throws ObjectTooLargeError', () => {
  const object = new IncomingObject(key, 1000)
  object.write(randomBytes(600))
  object.write(randomBytes(600))
  object.write(randomBytes(600))
  assert.throws(
    () => object.finish(),
    (error: unknown) => error instanceof ObjectTooLargeError && error.limit === 1000
  )
})

test(
  'objects received at once, each released after use, get pooled buffers ' +
    'back without mixing bytes; a piece may be reused by its writer',
  () => {
    const objects = [randomBytes(600_000), randomBytes(3 * CHUNK_SIZE + 1), randomBytes(10), randomBytes(900_000)]
    for (let round = 0; round < 3; round++) {
      const incoming = objects.map(() => new IncomingObject(key, 10 * CHUNK_SIZE))
      const scratch = Buffer.alloc(65_536)
      // Interleaved, as from several associations, through one reused piece buffer, as a socket reader might.
      for (
        let offset = 0;
        incoming.some((_, i) => offset < (objects[i] as Buffer).byteLength);
        offset += scratch.byteLength
      ) {
        incoming.forEach((object, i) => {
          const piece = (objects[i] as Buffer).subarray(offset, offset + scratch.byteLength)
          if (piece.byteLength === 0) return
          piece.copy(scratch)
          object.write(scratch.subarray(0, piece.byteLength))
          scratch.fill(0xee)
        })
      }
      const received = incoming.map(object => object.finish())
      received.forEach((r, i) => {
        assert.ok(r.bytes.equals(objects[i] as Buffer), `round ${round}, object ${i}: the same bytes`)
        assert.is(r.sha256, sha256(objects[i] as Buffer))
      })
      for (const object of incoming) object.release()
    }
    const released = new IncomingObject(key, CHUNK_SIZE)
    released.write(Buffer.from('x'))
    released.finish()
    released.release()
    released.release()
  }
)

test('tiny pieces are sealed in batches: a few pieces of cipher output per chunk, not one per piece', () => {
  const bytes = randomBytes(2 * CHUNK_SIZE + 999)
  const object = new IncomingObject(key, 10 * CHUNK_SIZE)
  writeInPieces(object, bytes, () => 7)
  const received = object.finish()
  assert.ok(received.bytes.equals(bytes))
  assert.is(received.sha256, sha256(bytes))
  for (const [i, chunk] of received.chunks.entries()) {
    assert.ok(chunk.sealed.length <= 2 + Math.ceil(CHUNK_SIZE / 65_536), `chunk ${i}: ${chunk.sealed.length} pieces`)
    assert.ok(
      key
        .open(Buffer.concat(chunk.sealed), CHUNK_ASSOCIATED_DATA)
        .equals(bytes.subarray(i * CHUNK_SIZE, (i + 1) * CHUNK_SIZE))
    )
  }
})

test.run()

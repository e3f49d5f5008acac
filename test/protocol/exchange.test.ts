/**
 * The exchange's messages and cryptography: a chunk or manifest changed in any way is refused, a key wrap
 * opens only for its recipient and its study version, and every malformed or oversized message is refused
 * with MalformedMessageError before it can cost more than its size limit.
 */
import { randomBytes } from 'node:crypto'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import {
  decryptChunk,
  encryptChunk,
  keyWrapVerifies,
  manifestVerifies,
  openIndex,
  sealIndex,
  signKeyWrap,
  signManifest,
  unwrapContentKey,
  wrapContentKey
} from '../../node/exchange/crypto.ts'
import { generateX25519 } from '../../node/membership/crypto.ts'
import {
  decodeManifest,
  decodeManifestIndex,
  type ManifestIndex,
  type StudyManifest,
  TRANSFER_CHUNK_PLAINTEXT
} from '../../protocol/exchange/manifest.ts'
import {
  CHUNK_FRAME_BYTES,
  MAX_ASKED_FRAME_BYTES,
  decodeAnnouncement,
  decodeChunkFrame,
  decodeChunkRequest,
  decodeManifestRequest,
  decodeManifestResponse,
  encodeChunkFrameHeader,
  encodeChunkRequest,
  encodeManifestResponse,
  FRAME_STATUS,
  MAX_REQUEST_BYTES
} from '../../protocol/exchange/messages.ts'
import type { PeerIdString } from '../../protocol/ids.ts'
import { throwsMalformed } from '../helpers/assertions.ts'

const STUDY = '1.2.826.0.1.3680043.8.498.1'
const VERSION = 'a'.repeat(32)
const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text)

async function makeManifest(): Promise<{
  manifest: StudyManifest
  key: Buffer
  origin: Awaited<ReturnType<typeof generateKeyPair>>
  index: ManifestIndex
}> {
  const origin = await generateKeyPair('Ed25519')
  const key = randomBytes(32)
  const files = [randomBytes(1000), randomBytes(TRANSFER_CHUNK_PLAINTEXT + 10)]
  const chunks: Buffer[] = []
  const index: ManifestIndex = { instances: [] }
  for (const [i, file] of files.entries()) {
    const firstChunk = chunks.length
    for (let offset = 0; offset < file.byteLength; offset += TRANSFER_CHUNK_PLAINTEXT)
      chunks.push(file.subarray(offset, offset + TRANSFER_CHUNK_PLAINTEXT))
    index.instances.push({
      sopUid: `1.2.3.${i}`,
      seriesUid: '1.2.3',
      size: file.byteLength,
      sha256: 'b'.repeat(64),
      firstChunk,
      chunkCount: chunks.length - firstChunk
    })
  }
  const sealed = chunks.map((chunk, i) => encryptChunk(key, STUDY, VERSION, i, i === chunks.length - 1, chunk))
  const { createHash } = await import('node:crypto')
  const manifest = await signManifest(origin, {
    v: 1,
    consortiumId: Buffer.alloc(32, 1).toString('base64url'),
    studyUid: STUDY,
    versionId: VERSION,
    origin: peerIdFromPrivateKey(origin).toString() as PeerIdString,
    createdAt: new Date().toISOString(),
    instanceCount: files.length,
    bytes: files.reduce((sum, f) => sum + f.byteLength, 0),
    chunkHashes: sealed.map(c => createHash('sha256').update(c).digest('hex')),
    chunkSizes: sealed.map(c => c.byteLength),
    sealedIndex: sealIndex(key, STUDY, VERSION, index)
  })
  return { manifest, key, origin, index }
}

test('a chunk opens only with its key, study, version, index and last flag', () => {
  const key = randomBytes(32)
  const plaintext = randomBytes(5000)
  const sealed = encryptChunk(key, STUDY, VERSION, 3, false, plaintext)
  assert.ok(decryptChunk(key, STUDY, VERSION, 3, false, sealed).equals(plaintext))
  assert.ok(
    encryptChunk(key, STUDY, VERSION, 3, false, plaintext).equals(sealed),
    'deterministic: every holder serves the same bytes'
  )
  const wrong: Array<[string, () => unknown]> = [
    ['another key', () => decryptChunk(randomBytes(32), STUDY, VERSION, 3, false, sealed)],
    ['another study', () => decryptChunk(key, `${STUDY}.9`, VERSION, 3, false, sealed)],
    ['another version', () => decryptChunk(key, STUDY, 'b'.repeat(32), 3, false, sealed)],
    ['another place', () => decryptChunk(key, STUDY, VERSION, 4, false, sealed)],
    ['claimed to be the last (truncation)', () => decryptChunk(key, STUDY, VERSION, 3, true, sealed)],
    [
      'a flipped bit',
      () => {
        const copy = Buffer.from(sealed)
        copy[10] = (copy[10] as number) ^ 1
        return decryptChunk(key, STUDY, VERSION, 3, false, copy)
      }
    ]
  ]
  for (const [what, open] of wrong) assert.throws(open, undefined, what)
})

test('a key wrap opens only for its recipient and its study version; signatures catch any change', async () => {
  const { manifest, key, origin, index } = await makeManifest()
  const recipient = generateX25519()
  const other = generateX25519()
  const parts = wrapContentKey(key, recipient.publicKeyRaw, STUDY, VERSION)
  const wrap = await signKeyWrap(origin, {
    v: 1,
    studyUid: STUDY,
    versionId: VERSION,
    recipient: 'p' as PeerIdString,
    ...parts,
    wrappedBy: manifest.origin,
    createdAt: new Date().toISOString()
  })
  assert.ok(unwrapContentKey(wrap, recipient.privateKey, recipient.publicKeyRaw).equals(key))
  assert.throws(
    () => unwrapContentKey(wrap, other.privateKey, other.publicKeyRaw),
    undefined,
    'another member cannot open it'
  )
  assert.throws(
    () => unwrapContentKey({ ...wrap, versionId: 'c'.repeat(32) }, recipient.privateKey, recipient.publicKeyRaw),
    undefined,
    'not for another version'
  )
  assert.ok(await keyWrapVerifies(wrap))
  assert.not.ok(
    await keyWrapVerifies({ ...wrap, recipient: 'q' as PeerIdString }),
    'a wrap re-addressed does not verify'
  )

  assert.ok(await manifestVerifies(manifest))
  assert.not.ok(
    await manifestVerifies({ ...manifest, chunkHashes: [...manifest.chunkHashes].reverse() }),
    'reordered chunks do not verify'
  )
  assert.not.ok(await manifestVerifies({ ...manifest, instanceCount: 3 }))
  assert.equal(openIndex(key, manifest), index)
  assert.throws(() => openIndex(randomBytes(32), manifest), undefined, 'the index does not open without the key')
})

test('manifests, indexes and messages: malformed or oversized input is refused', async () => {
  const { manifest, index } = await makeManifest()
  assert.equal(decodeManifest(JSON.parse(JSON.stringify(manifest))), manifest)
  throwsMalformed(() => decodeManifest({ ...manifest, studyUid: '../etc/passwd' }), 'a path for a UID')
  throwsMalformed(() => decodeManifest({ ...manifest, chunkHashes: [], chunkSizes: [] }), 'no chunks')
  throwsMalformed(
    () => decodeManifest({ ...manifest, chunkSizes: manifest.chunkSizes.map(() => 2 ** 30) }),
    'chunks larger than allowed'
  )
  throwsMalformed(
    () => decodeManifest({ ...manifest, chunkHashes: manifest.chunkHashes.map(() => 'zz') }),
    'hashes that are not SHA-256'
  )
  throwsMalformed(() => decodeManifest({ ...manifest, v: 2 }), 'an unknown version')
  throwsMalformed(
    () =>
      decodeManifestIndex({ instances: index.instances.map(i => ({ ...i, firstChunk: i.firstChunk + 1 })) }, manifest),
    'instances whose chunks overlap or leave gaps'
  )
  throwsMalformed(
    () => decodeManifestIndex({ instances: index.instances.slice(1) }, manifest),
    'an index missing an instance'
  )

  const response = encodeManifestResponse({ status: 'ok', manifest, wraps: [], have: new Uint8Array([3]) })
  const decoded = decodeManifestResponse(response)
  assert.is(decoded.status, 'ok')
  throwsMalformed(
    () =>
      decodeManifestResponse(encodeManifestResponse({ status: 'ok', manifest, wraps: [], have: new Uint8Array(9) })),
    'a bit field of the wrong size'
  )
  throwsMalformed(
    () => decodeManifestRequest(utf8(JSON.stringify({ studyUid: STUDY, pad: 'x'.repeat(MAX_REQUEST_BYTES) }))),
    'an oversized request'
  )
  throwsMalformed(() => decodeManifestRequest(utf8('{"studyUid":')), 'truncated JSON')
  throwsMalformed(
    () => decodeAnnouncement(utf8(JSON.stringify({ manifest, wraps: Array.from({ length: 65 }, () => ({})) }))),
    'too many wraps'
  )

  const request = { studyUid: STUDY, versionId: VERSION, index: 7, offset: 65536 }
  assert.equal(decodeChunkRequest(encodeChunkRequest(request)), request)
  throwsMalformed(() => decodeChunkRequest(encodeChunkRequest({ ...request, index: -1 })), 'a negative index')
  throwsMalformed(
    () => decodeChunkRequest(encodeChunkRequest({ ...request, offset: 2 ** 21 })),
    'an offset past any chunk'
  )
  // `f`, the frame body the asker takes: kept when within bounds; a request without it has none.
  const framed = { ...request, frameBytes: MAX_ASKED_FRAME_BYTES }
  assert.equal(decodeChunkRequest(encodeChunkRequest(framed)), framed)
  // `p: 0`, sealed wanted: kept; `p: 1` is the default, as is no `p`.
  const sealedOnly = { ...request, pack: false as const }
  assert.equal(decodeChunkRequest(encodeChunkRequest(sealedOnly)), sealedOnly)
  assert.equal(decodeChunkRequest(utf8(JSON.stringify({ s: STUDY, v: VERSION, i: 7, o: 65536, p: 1 }))), request)
  throwsMalformed(() => decodeChunkRequest(utf8(JSON.stringify({ s: STUDY, v: VERSION, i: 7, o: 0, p: 2 }))), 'p: 2')
  assert.not.ok('frameBytes' in decodeChunkRequest(encodeChunkRequest(request)))
  for (const frameBytes of [CHUNK_FRAME_BYTES - 1, MAX_ASKED_FRAME_BYTES + 1, 0.5]) {
    throwsMalformed(
      () => decodeChunkRequest(encodeChunkRequest({ ...request, frameBytes })),
      `a frame size of ${frameBytes}`
    )
  }
  const frame = Buffer.concat([encodeChunkFrameHeader(FRAME_STATUS.data, 7, 65536), Buffer.alloc(100, 1)])
  assert.equal(
    { ...decodeChunkFrame(frame), bytes: undefined },
    { status: 0, index: 7, offset: 65536, bytes: undefined }
  )
  throwsMalformed(
    () =>
      decodeChunkFrame(
        Buffer.concat([encodeChunkFrameHeader(FRAME_STATUS.data, 7, 0), Buffer.alloc(CHUNK_FRAME_BYTES + 1)])
      ),
    'an oversized frame'
  )
  throwsMalformed(() => decodeChunkFrame(encodeChunkFrameHeader(FRAME_STATUS.data, 7, 0)), 'a data frame without data')
  throwsMalformed(() => decodeChunkFrame(Buffer.from([9, 0, 0, 0, 0, 0, 0, 0, 0])), 'an unknown status')
  throwsMalformed(() => decodeChunkFrame(Buffer.from([0, 0, 0])), 'a short frame')
})

test('declared totals, sizes and counts that disagree with the chunks are refused, no loop sized by them', async () => {
  const { manifest, index } = await makeManifest()
  throwsMalformed(() => decodeManifest({ ...manifest, bytes: manifest.bytes + 1 }), 'bytes more than the chunks hold')
  throwsMalformed(() => decodeManifest({ ...manifest, bytes: 2 ** 52 }), 'bytes set huge')
  throwsMalformed(() => decodeManifest({ ...manifest, instanceCount: 0 }), 'no instances')
  const chunks = manifest.chunkHashes.length
  throwsMalformed(() => decodeManifest({ ...manifest, instanceCount: chunks + 1 }), 'more instances than chunks')
  throwsMalformed(() => decodeManifest({ ...manifest, instanceCount: Number.MAX_SAFE_INTEGER }), 'a count set huge')
  // Sizes swapped between chunks keep every total right; only the index shows the lie.
  const [first, second, third] = manifest.chunkSizes as [number, number, number]
  const swapped = { ...manifest, chunkSizes: [second, first, third] }
  assert.is(decodeManifest(swapped).bytes, manifest.bytes, 'the totals still agree')
  throwsMalformed(() => decodeManifestIndex(index, swapped), 'chunk sizes that do not cut the instance sizes')
  type Instance = ManifestIndex['instances'][number]
  const lying = (instance: Partial<Instance>): ManifestIndex => ({
    instances: [{ ...(index.instances[0] as Instance), ...instance }, ...index.instances.slice(1)]
  })
  throwsMalformed(() => decodeManifestIndex(lying({ size: 999 }), manifest), 'an instance size the chunk does not hold')
  const started = performance.now()
  const huge = lying({ size: 2 ** 52, chunkCount: Math.ceil(2 ** 52 / TRANSFER_CHUNK_PLAINTEXT) })
  throwsMalformed(() => decodeManifestIndex(huge, manifest), 'an instance size and chunk count set huge')
  assert.ok(performance.now() - started < 100, 'refused before any loop over the declared chunk count')
  assert.equal(decodeManifestIndex(JSON.parse(JSON.stringify(index)), manifest), index, 'the honest index decodes')
})

test.run()

/**
 * The exchange's serving side (ExchangeServer) driven in-process over in-memory libp2p streams, with what it
 * serves stood in for and its timeout shortened: what an asker is answered, in which order and in which
 * frames; and an asker that stops taking frames, a request cut short and a request that stops midway are
 * each refused with their code, counted against the asker, and free the stream in about the timeout.
 */
import { streamPair } from '@libp2p/utils'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { WireChunk } from '../../node/exchange/holdings.ts'
import type { OpenVersion } from '../../node/exchange/index.ts'
import { ExchangeServer } from '../../node/exchange/serve.ts'
import { PeerPenalties } from '../../node/p2p/penalties.ts'
import { CHUNK_FORM, type ChunkFrame2, decodeChunkFrame2 } from '../../protocol/exchange/chunks.ts'
import {
  CHUNK_FRAME_BYTES,
  type ChunkFrame,
  type ChunkRequest,
  decodeChunkFrame,
  decodeManifestResponse,
  encodeChunkRequest,
  encodeManifestRequest,
  FRAME_STATUS
} from '../../protocol/exchange/messages.ts'
import {
  connectionFrom,
  decodeLength,
  framed,
  member,
  readableLog,
  STUDY,
  version,
  within,
  wrapFor
} from './helpers.ts'

const TIMEOUT_MS = 300
const PEER = '12D3KooWAskerAskerAskerAskerAskerAskerAskerAsker1'
const VERSION = 'b'.repeat(32)

interface Served {
  lines: Array<Record<string, unknown>>
  penalties: PeerPenalties
  server: ExchangeServer
  audits: unknown[]
}

interface Stubs {
  /** the chunk a request is answered with (256 KiB of 1s unless given) */
  requested?: (request: ChunkRequest) => Promise<Buffer | undefined>
  /** the same on `/radmesh/chunks/2.0.0` */
  requestedOnWire?: (request: ChunkRequest, pack: boolean) => Promise<WireChunk | undefined>
  latest?: OpenVersion
  wrap?: unknown
  have?: Uint8Array
}

function serving(stubs: Stubs = {}): Served {
  const { log, lines } = readableLog()
  const penalties = new PeerPenalties()
  const audits: unknown[] = []
  const sealed = Buffer.alloc(256 * 1024, 1)
  const server = new ExchangeServer(
    {
      penalties,
      log,
      audit: {
        append: async (entry: unknown) => {
          audits.push(entry)
          return undefined as never
        }
      },
      versions: {
        openLatest: async () => stubs.latest,
        openVersion: async (_studyUid: string, versionId: string) =>
          stubs.latest?.manifest.versionId === versionId ? stubs.latest : undefined,
        wrapFor: async () => stubs.wrap as never
      },
      holdings: {
        have: async () => stubs.have ?? new Uint8Array([0xff]),
        requested: stubs.requested ?? (async () => sealed),
        requestedOnWire: stubs.requestedOnWire ?? (async () => ({ form: CHUNK_FORM.sealed, bytes: sealed }))
      }
    },
    { timeoutMs: TIMEOUT_MS }
  )
  return { lines, penalties, server, audits }
}

/** Sends `requests` on a chunks stream and collects the frames, until the server ends the stream. */
async function askChunks(served: Served, requests: ChunkRequest[]): Promise<ChunkFrame[]> {
  return await askChunksOf(served, requests, 1, decodeChunkFrame)
}

/** The same on `/radmesh/chunks/2.0.0`. */
async function askChunks2(served: Served, requests: ChunkRequest[]): Promise<ChunkFrame2[]> {
  return await askChunksOf(served, requests, 2, decodeChunkFrame2)
}

async function askChunksOf<F>(
  served: Served,
  requests: ChunkRequest[],
  protocol: 1 | 2,
  decode: (bytes: Uint8Array) => F
): Promise<F[]> {
  const [asker, server] = await streamPair()
  const bytes: Uint8Array[] = []
  asker.addEventListener('message', event => {
    bytes.push(event.data.subarray())
  })
  for (const request of requests) asker.send(framed(encodeChunkRequest(request)))
  await asker.close()
  const handler = protocol === 1 ? served.server.handleChunks : served.server.handleChunks2
  await within(10 * TIMEOUT_MS, 'the chunks stream', handler(server, connectionFrom(PEER)))
  await new Promise(resolve => setTimeout(resolve, 50))
  const frames: F[] = []
  let rest = Buffer.concat(bytes)
  while (rest.byteLength > 0) {
    const { length, bytesRead } = decodeLength(rest)
    frames.push(decode(rest.subarray(bytesRead, bytesRead + length)))
    rest = rest.subarray(bytesRead + length)
  }
  return frames
}

async function askManifest(served: Served, knownVersion?: string): Promise<Uint8Array> {
  const [asker, server] = await streamPair()
  const reply: Uint8Array[] = []
  asker.addEventListener('message', event => {
    reply.push(event.data.subarray())
  })
  asker.send(
    framed(encodeManifestRequest({ studyUid: STUDY, ...(knownVersion === undefined ? {} : { knownVersion }) }))
  )
  await asker.close()
  await within(10 * TIMEOUT_MS, 'the manifest stream', served.server.handleManifest(server, connectionFrom(PEER)))
  await new Promise(resolve => setTimeout(resolve, 50))
  const bytes = Buffer.concat(reply)
  return bytes.subarray(decodeLength(bytes).bytesRead)
}

const request = (index: number, offset = 0): ChunkRequest => ({ studyUid: STUDY, versionId: VERSION, index, offset })

test(
  'a chunk is sent in frames of CHUNK_FRAME_BYTES from ' + 'the offset asked, and the first one served is audited',
  async () => {
    const chunk = Buffer.from(Array.from({ length: 100_000 }, (_, i) => i % 251))
    const served = serving({ requested: async () => chunk })
    const frames = await askChunks(served, [request(3, 1000)])
    assert.equal(
      frames.map(frame => [frame.status, frame.index, frame.offset]),
      [
        [0, 3, 1000],
        [0, 3, 1000 + CHUNK_FRAME_BYTES],
        [0, 3, 1000 + 2 * CHUNK_FRAME_BYTES],
        [0, 3, 1000 + 3 * CHUNK_FRAME_BYTES]
      ]
    )
    assert.ok(Buffer.concat(frames.map(frame => frame.bytes)).equals(chunk.subarray(1000)))
    assert.is(served.audits.length, 1)
    assert.is(served.penalties.scoreOf(PEER), 0)
  }
)

test('on 2.0.0, frames are as large as the asker asked (f); on 1.0.0 they stay CHUNK_FRAME_BYTES', async () => {
  const chunk = Buffer.from(Array.from({ length: 300_000 }, (_, i) => i % 251))
  const wire = { form: CHUNK_FORM.sealed, bytes: chunk }
  const served = serving({ requested: async () => chunk, requestedOnWire: async () => wire })
  const asked = { ...request(2), frameBytes: 128 * 1024 }
  const frames = await askChunksOf(served, [asked], 2, bytes => decodeChunkFrame2(bytes, asked.frameBytes))
  assert.equal(
    frames.map(frame => [frame.offset, frame.bytes.byteLength]),
    [
      [0, 128 * 1024],
      [128 * 1024, 128 * 1024],
      [256 * 1024, 300_000 - 256 * 1024]
    ]
  )
  assert.ok(Buffer.concat(frames.map(frame => frame.bytes)).equals(chunk))
  const old = await askChunks(served, [asked])
  assert.is(old.length, Math.ceil(300_000 / CHUNK_FRAME_BYTES), 'a 1.0.0 asker gets the frames it can read')
})

test('on 2.0.0 a chunk asked for sealed (p: 0) is not packed; one asked for as usual may be', async () => {
  const packs: boolean[] = []
  const chunk = Buffer.alloc(50_000, 3)
  const served = serving({
    requestedOnWire: async (_request, pack) => {
      packs.push(pack)
      return { form: CHUNK_FORM.sealed, bytes: chunk }
    }
  })
  await askChunks2(served, [{ ...request(0), pack: false }, request(1)])
  assert.equal(packs, [false, true])
})

test('requests are answered in the order asked, however long each takes to prepare', async () => {
  const delays = [60, 0, 30, 0]
  const served = serving({
    requested: async ({ index }) => {
      await new Promise(resolve => setTimeout(resolve, delays[index]))
      return Buffer.alloc(10, index)
    }
  })
  const frames = await askChunks(
    served,
    [0, 1, 2, 3].map(index => request(index))
  )
  assert.equal(
    frames.map(frame => frame.index),
    [0, 1, 2, 3]
  )
  assert.equal(
    frames.map(frame => frame.bytes[0]),
    [0, 1, 2, 3]
  )
})

test('a chunk this node does not hold is answered not-held, and the next request is still served', async () => {
  const served = serving({ requested: async ({ index }) => (index === 0 ? undefined : Buffer.alloc(10, 9)) })
  const frames = await askChunks(served, [request(0, 5), request(1)])
  assert.equal(
    frames.map(frame => [frame.status, frame.index, frame.offset, frame.bytes.byteLength]),
    [
      [FRAME_STATUS.notHeld, 0, 5, 0],
      [FRAME_STATUS.data, 1, 0, 10]
    ]
  )
})

test('on chunks 2.0.0 every frame says the form and length of its chunk; a chunk not held has neither', async () => {
  const packed = Buffer.from(Array.from({ length: 40_000 }, (_, i) => i % 199))
  const served = serving({
    requestedOnWire: async ({ index }) => (index === 0 ? undefined : { form: CHUNK_FORM.packed, bytes: packed })
  })
  const frames = await askChunks2(served, [request(0), request(1)])
  assert.equal(
    frames.map(frame => [frame.status, frame.index, frame.offset, frame.form, frame.length]),
    [
      [FRAME_STATUS.notHeld, 0, 0, CHUNK_FORM.sealed, 0],
      [FRAME_STATUS.data, 1, 0, CHUNK_FORM.packed, 40_000],
      [FRAME_STATUS.data, 1, CHUNK_FRAME_BYTES, CHUNK_FORM.packed, 40_000]
    ]
  )
  assert.ok(Buffer.concat(frames.map(frame => frame.bytes)).equals(packed))
})

test(
  'a manifest request is answered with the latest version, ' + "the asker's wrap and the chunks held, and audited",
  async () => {
    const origin = await member()
    const asker = await member()
    const latest = await version(origin, [Buffer.alloc(1000, 1)])
    const wrap = await wrapFor(latest, asker, origin)
    const served = serving({ latest, wrap, have: new Uint8Array([1]) })
    const answer = decodeManifestResponse(await askManifest(served))
    assert.is(answer.status, 'ok')
    if (answer.status !== 'ok') return
    assert.is(answer.manifest.versionId, latest.manifest.versionId)
    assert.equal(answer.wraps, [wrap])
    assert.equal([...answer.have], [1])
    assert.match(JSON.stringify(served.audits), 'manifest and key wrap')
  }
)

test('an asker that names the latest version is answered "current" with the chunks held only', async () => {
  const latest = await version(await member(), [Buffer.alloc(1000, 1)])
  const served = serving({ latest, have: new Uint8Array([1]) })
  const answer = decodeManifestResponse(await askManifest(served, latest.manifest.versionId), 1)
  assert.equal(answer, { status: 'current', have: new Uint8Array([1]) })
  assert.is(served.audits.length, 0, 'nothing of the study was given')
})

test('an asker that takes no frames is dropped once a frame waits past the timeout (stalled-stream)', async () => {
  const { lines, penalties, server } = serving()
  const [asker, stream] = await streamPair()
  // The asker's side takes nothing more: every send of the server waits for a drain that never comes.
  Object.assign(stream, { send: () => false })
  asker.send(framed(encodeChunkRequest(request(0))))
  await within(10 * TIMEOUT_MS, 'the chunks stream', server.handleChunks(stream, connectionFrom(PEER)))
  const refused = lines.find(line => line['code'] === 'stalled-stream')
  assert.ok(refused !== undefined, JSON.stringify(lines))
  assert.is(refused['protocol'], '/radmesh/chunks/1.0.0')
  assert.ok(penalties.scoreOf(PEER) > 0)
  assert.is(stream.status, 'aborted')
})

test('a request cut short is truncated-message; one that stops midway is stalled-stream; both counted', async () => {
  for (const [code, close] of [
    ['truncated-message', true],
    ['stalled-stream', false]
  ] as const) {
    const { lines, penalties, server } = serving()
    const [asker, stream] = await streamPair()
    const bytes = framed(encodeManifestRequest({ studyUid: STUDY }))
    asker.send(bytes.subarray(0, 10))
    if (close) await asker.close()
    await within(10 * TIMEOUT_MS, 'the manifest stream', server.handleManifest(stream, connectionFrom(PEER)))
    const refused = lines.some(line => line['code'] === code && line['protocol'] === '/radmesh/manifest/1.0.0')
    assert.ok(refused, `${code}: ${JSON.stringify(lines)}`)
    assert.ok(penalties.scoreOf(PEER) > 0, code)
  }
})

test('a whole request for a study this node does not know is answered unknown-study, and not counted', async () => {
  const served = serving()
  const answer = decodeManifestResponse(await askManifest(served))
  assert.equal(answer, { status: 'unknown-study' })
  assert.is(served.penalties.scoreOf(PEER), 0, JSON.stringify(served.lines))
})

test.run()

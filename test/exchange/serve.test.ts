/**
 * The exchange's serving side driven in-process over in-memory libp2p streams, with its timeout shortened:
 * an asker that stops taking frames, a request cut short and a request that stops midway are each refused
 * with their code and counted against the asker, and free the stream, in about the timeout.
 */
import { Writable } from 'node:stream'
import type { Connection, Stream } from '@libp2p/interface'
import { streamPair } from '@libp2p/utils'
import { pino } from 'pino'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Exchange, type ExchangeOptions } from '../../node/exchange/exchange.ts'
import { PeerPenalties } from '../../node/p2p/penalties.ts'
import { encodeChunkRequest, encodeManifestRequest } from '../../protocol/exchange/messages.ts'
import { framed } from '../helpers/bad-member.ts'

const TIMEOUT_MS = 300
const PEER = '12D3KooWAskerAskerAskerAskerAskerAskerAskerAsker1'
const STUDY = '1.2.826.0.1.3680043.8.498.7'
const VERSION = 'b'.repeat(32)

interface Served { lines: Array<Record<string, unknown>>, penalties: PeerPenalties, exchange: Exchange }

function serving (): Served {
  const lines: Array<Record<string, unknown>> = []
  const sink = new Writable({
    write (chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>)
      done()
    }
  })
  const penalties = new PeerPenalties()
  const exchange = new Exchange({
    penalties,
    log: pino({ level: 'info' }, sink),
    audit: { append: async () => {} },
    timeoutMs: TIMEOUT_MS,
    versions: { openLatest: async () => undefined }
  } as unknown as ExchangeOptions)
  // Every chunk asked for is "held": 256 KiB of sealed bytes, as from the archive.
  const sealed = Buffer.alloc(256 * 1024, 1)
  Object.assign(exchange, { prepareChunk: async (request: unknown) => ({ request, sealed }) })
  return { lines, penalties, exchange }
}

const connection = { remotePeer: { toString: () => PEER } } as unknown as Connection
type Handler = (stream: Stream, connection: Connection) => Promise<void>
const handler = (exchange: Exchange, name: string): Handler =>
  (exchange as unknown as Record<string, Handler>)[name] as Handler

async function within<T> (ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    const late = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => { reject(new Error(`${what}: still running after ${ms} ms`)) }, ms)
    })
    return await Promise.race([promise, late])
  } finally {
    clearTimeout(timer)
  }
}

test('an asker that takes no frames is dropped once a frame waits past the timeout (stalled-stream)', async () => {
  const { lines, penalties, exchange } = serving()
  const [asker, server] = await streamPair()
  // The asker's side takes nothing more: every send of the server waits for a drain that never comes.
  Object.assign(server, { send: () => false })
  asker.send(framed(encodeChunkRequest({ studyUid: STUDY, versionId: VERSION, index: 0, offset: 0 })))
  await within(10 * TIMEOUT_MS, 'the chunks stream', handler(exchange, 'onChunksStream')(server, connection))
  const refused = lines.find(line => line['code'] === 'stalled-stream')
  assert.ok(refused !== undefined, JSON.stringify(lines))
  assert.is(refused['protocol'], '/radmesh/chunks/1.0.0')
  assert.ok(penalties.scoreOf(PEER) > 0)
  assert.is(server.status, 'aborted')
})

test('a request cut short is truncated-message; one that stops midway is stalled-stream; both counted', async () => {
  for (const [code, close] of [['truncated-message', true], ['stalled-stream', false]] as const) {
    const { lines, penalties, exchange } = serving()
    const [asker, server] = await streamPair()
    const request = framed(encodeManifestRequest({ studyUid: STUDY }))
    asker.send(request.subarray(0, 10))
    if (close) await asker.close()
    await within(10 * TIMEOUT_MS, 'the manifest stream', handler(exchange, 'onManifestStream')(server, connection))
    const refused = lines.some(line => line['code'] === code && line['protocol'] === '/radmesh/manifest/1.0.0')
    assert.ok(refused, `${code}: ${JSON.stringify(lines)}`)
    assert.ok(penalties.scoreOf(PEER) > 0, code)
  }
})

test('a whole request is answered, and the asker is not counted against', async () => {
  const { lines, penalties, exchange } = serving()
  const [asker, server] = await streamPair()
  const reply: Uint8Array[] = []
  asker.addEventListener('message', event => { reply.push(event.data.subarray()) })
  asker.send(framed(encodeManifestRequest({ studyUid: STUDY })))
  await asker.close()
  await within(10 * TIMEOUT_MS, 'the manifest stream', handler(exchange, 'onManifestStream')(server, connection))
  await new Promise(resolve => setTimeout(resolve, 50))
  assert.match(Buffer.concat(reply).toString(), '"status":"unknown-study"')
  assert.is(penalties.scoreOf(PEER), 0, JSON.stringify(lines))
})

test.run()

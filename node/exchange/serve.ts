/**
 * Serving the exchange: answering `/radmesh/manifest/1.0.0` (the latest version this node knows of a study,
 * the key wrap it holds for the asker, which chunks it can serve) and `/radmesh/chunks/2.0.0` and `1.0.0`
 * (chunk bytes in frames, requests answered in order; 2.0.0 packs chunks where that saves, in frames of the
 * size the asker asked for). Chunks are
 * served to any member: they are ciphertext, and only chunks of versions this node can read itself (see
 * holdings.ts). Every stream is held to the limits in
 * protocol/exchange/messages.ts; a peer that breaks them is refused and counted against.
 */
import type { Connection, Stream } from '@libp2p/interface'
import type { Logger } from 'pino'
import { Uint8ArrayList } from 'uint8arraylist'
import { CHUNK_FORM, CHUNKS_PROTOCOL_2, encodeChunkFrame2Header } from '../../protocol/exchange/chunks.ts'
import {
  CHUNK_FRAME_BYTES,
  CHUNK_REQUEST_IDLE_MS,
  CHUNKS_PROTOCOL,
  type ChunkRequest,
  decodeChunkRequest,
  decodeManifestRequest,
  encodeChunkFrameHeader,
  encodeManifestResponse,
  FRAME_STATUS,
  MANIFEST_PROTOCOL,
  MAX_REQUEST_BYTES,
  PREPARED_AHEAD
} from '../../protocol/exchange/messages.ts'
import type { AuditLog } from '../audit/log.ts'
import { offHeapGarbage } from '../heap.ts'
import type { PeerPenalties } from '../p2p/penalties.ts'
import { messageStream } from '../p2p/wire.ts'
import type { Holdings, WireChunk } from './holdings.ts'
import { readOne, refuseStream } from './streams.ts'
import type { StudyVersions } from './versions.ts'

export interface ExchangeServerComponents {
  versions: Pick<StudyVersions, 'openLatest' | 'openVersion' | 'wrapFor'>
  holdings: Pick<Holdings, 'have' | 'requested' | 'requestedOnWire'>
  audit: Pick<AuditLog, 'append'>
  penalties: Pick<PeerPenalties, 'refuse'>
  log: Logger
}

export interface ExchangeServerInit {
  /** how long a request, an answer or one chunk frame may take (EXCHANGE_TIMEOUT_MS; tests shorten it) */
  timeoutMs: number
  /** pack chunks for peers that speak `/radmesh/chunks/2.0.0` (true unless told) */
  pack?: boolean
}

interface Prepared {
  request: ChunkRequest
  wire: WireChunk | undefined
}

/** How the chunks protocols differ: what a server sends of a chunk, and a frame's header. */
interface ChunksDialect {
  protocol: string
  prepare(request: ChunkRequest): Promise<WireChunk | undefined>
  header(request: ChunkRequest, wire: WireChunk | undefined, offset: number): Uint8Array
  /** a frame's body at most */
  frameBytes(request: ChunkRequest): number
}

export class ExchangeServer {
  private readonly components: ExchangeServerComponents
  private readonly timeoutMs: number
  private readonly pack: boolean
  private stopped = false

  constructor(components: ExchangeServerComponents, init: ExchangeServerInit) {
    this.components = components
    this.timeoutMs = init.timeoutMs
    this.pack = init.pack ?? true
  }

  /** Chunks streams being served stop taking requests. */
  stop(): void {
    this.stopped = true
  }

  readonly handleManifest = async (stream: Stream, connection: Connection): Promise<void> => {
    const { versions, holdings, audit } = this.components
    const peer = connection.remotePeer.toString()
    const signal = AbortSignal.timeout(this.timeoutMs)
    try {
      const lp = messageStream(stream, { maxDataLength: MAX_REQUEST_BYTES, messageTimeoutMs: this.timeoutMs })
      const { studyUid, knownVersion } = decodeManifestRequest(await readOne(lp, signal, 'manifest request'))
      const version = await versions.openLatest(studyUid)
      // The version the asker is fetching is answered while this node can still serve it, even when the study
      // has a newer one: the asker finishes it, then fetches only what it lacks of the newer (fetch.ts).
      const known =
        version === undefined || knownVersion === undefined
          ? undefined
          : await versions.openVersion(studyUid, knownVersion)
      if (version === undefined) {
        await lp.write(encodeManifestResponse({ status: 'unknown-study' }), signal)
      } else if (known !== undefined) {
        await lp.write(encodeManifestResponse({ status: 'current', have: await holdings.have(known) }), signal)
      } else {
        const wrap = await versions.wrapFor(studyUid, version.manifest.versionId, peer)
        const wraps = wrap === undefined ? [] : [wrap]
        const have = await holdings.have(version)
        await lp.write(encodeManifestResponse({ status: 'ok', manifest: version.manifest, wraps, have }), signal)
        const detail = wrap === undefined ? 'manifest (no key for this peer)' : 'manifest and key wrap'
        const actor = { type: 'peer', id: peer } as const
        await audit.append({ event: 'query', action: 'E', outcome: 0, actor, study: studyUid, detail })
      }
      await stream.close({ signal })
    } catch (error) {
      refuseStream(this.components, stream, { peer, protocol: MANIFEST_PROTOCOL }, error)
    }
  }

  /** `/radmesh/chunks/1.0.0`: every chunk sealed, as the manifest lists it. */
  readonly handleChunks = async (stream: Stream, connection: Connection): Promise<void> => {
    const { holdings } = this.components
    await this.serveChunks(stream, connection, {
      protocol: CHUNKS_PROTOCOL,
      prepare: async request => {
        const sealed = await holdings.requested(request)
        return sealed === undefined ? undefined : { form: CHUNK_FORM.sealed, bytes: sealed }
      },
      header: (request, wire, offset) =>
        encodeChunkFrameHeader(wire === undefined ? FRAME_STATUS.notHeld : FRAME_STATUS.data, request.index, offset),
      frameBytes: () => CHUNK_FRAME_BYTES
    })
  }

  /** `/radmesh/chunks/2.0.0`: a chunk packed where that saves, every frame saying the chunk's form and length. */
  readonly handleChunks2 = async (stream: Stream, connection: Connection): Promise<void> => {
    const { holdings } = this.components
    await this.serveChunks(stream, connection, {
      protocol: CHUNKS_PROTOCOL_2,
      prepare: async request => await holdings.requestedOnWire(request, this.pack && request.pack !== false),
      header: (request, wire, offset) =>
        encodeChunkFrame2Header(
          wire === undefined
            ? { status: FRAME_STATUS.notHeld, index: request.index, offset, form: CHUNK_FORM.sealed, length: 0 }
            : {
                status: FRAME_STATUS.data,
                index: request.index,
                offset,
                form: wire.form,
                length: wire.bytes.byteLength
              }
        ),
      frameBytes: request => request.frameBytes ?? CHUNK_FRAME_BYTES
    })
  }

  /**
   * Serves chunk requests in order. Requests are read ahead and their chunks prepared (read from the archive,
   * encrypted, packed) up to PREPARED_AHEAD at a time while earlier ones are being sent, so the disk, the
   * cipher, zstd and the network work at once. The asker's own bound on bytes in flight keeps this short.
   */
  private async serveChunks(stream: Stream, connection: Connection, dialect: ChunksDialect): Promise<void> {
    const { audit } = this.components
    const peer = connection.remotePeer.toString()
    const lp = messageStream(stream, { maxDataLength: MAX_REQUEST_BYTES, messageTimeoutMs: this.timeoutMs })
    // An asker that stops taking frames holds a stream and the chunks prepared for it: not for longer than this.
    const write = async (data: Uint8Array | Uint8ArrayList): Promise<void> => {
      await lp.write(data, undefined, this.timeoutMs)
    }
    const audited = new Set<string>()
    const queue: Array<Promise<Prepared>> = []
    let reading = true
    let readError: unknown
    let more: () => void = () => {}
    let room: () => void = () => {}
    const reader = (async () => {
      try {
        while (!this.stopped) {
          while (queue.length >= PREPARED_AHEAD)
            await new Promise<void>(resolve => {
              room = resolve
            })
          const bytes = await lp.read(undefined, CHUNK_REQUEST_IDLE_MS)
          if (bytes === undefined) break
          const request = decodeChunkRequest(bytes)
          const prepared = dialect.prepare(request).then(wire => ({ request, wire }))
          prepared.catch(() => {})
          queue.push(prepared)
          more()
        }
      } catch (error) {
        readError = error
      } finally {
        reading = false
        more()
      }
    })()
    try {
      while (true) {
        if (queue.length === 0) {
          if (!reading) break
          await new Promise<void>(resolve => {
            more = resolve
          })
          continue
        }
        const { request, wire } = await (queue.shift() as Promise<Prepared>)
        room()
        if (wire === undefined) {
          await write(dialect.header(request, wire, request.offset))
          continue
        }
        if (!audited.has(request.studyUid)) {
          audited.add(request.studyUid)
          const actor = { type: 'peer', id: peer } as const
          const served = { study: request.studyUid, detail: 'encrypted chunks served' }
          await audit.append({ event: 'instancesTransferred', action: 'R', outcome: 0, actor, ...served })
        }
        const { bytes } = wire
        const frameBytes = dialect.frameBytes(request)
        for (let offset = request.offset; offset < bytes.byteLength; offset += frameBytes) {
          const header = dialect.header(request, wire, offset)
          await write(new Uint8ArrayList(header, bytes.subarray(offset, offset + frameBytes)))
        }
        // The chunk as sent and Noise's copies of it are garbage soon (heap.ts); the archive read and the
        // cipher's own output were released already (holdings.ts).
        offHeapGarbage(3 * (bytes.byteLength - request.offset))
      }
      await reader
      if (readError !== undefined) throw readError
      await stream.close().catch(() => {})
    } catch (error) {
      refuseStream(this.components, stream, { peer, protocol: dialect.protocol }, error)
    }
  }
}

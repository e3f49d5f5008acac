/**
 * The study exchange: share a study with readers, announce it to them, serve its chunks to any member who
 * asks, and fetch studies (see fetch.ts). Wire formats in protocol/exchange; cryptography in crypto.ts.
 *
 * Who may read: only a member that holds a key wrap made for its certified X25519 key. The origin wraps
 * for the readers it shares with; a recipient can wrap for a consultant. Wraps are made only for members
 * whose certificate is valid and not revoked. Chunks are served to any member (they are ciphertext), and
 * only chunks of versions this node can read itself, encrypted again from its own archive.
 */
import type { Connection, Libp2p, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import type { Logger } from 'pino'
import { Uint8ArrayList } from 'uint8arraylist'
import { type KeyWrap, type StudyManifest, TRANSFER_CHUNK_PLAINTEXT } from '../../protocol/exchange/manifest.ts'
import type { ChunkRequest } from '../../protocol/exchange/messages.ts'
import {
  ANNOUNCE_PROTOCOL,
  CHUNK_FRAME_BYTES,
  CHUNKS_PROTOCOL,
  decodeAnnouncement,
  decodeAnnouncementAnswer,
  decodeChunkRequest,
  decodeManifestRequest,
  encodeAnnouncement,
  encodeAnnouncementAnswer,
  encodeChunkFrameHeader,
  encodeManifestResponse,
  EXCHANGE_TIMEOUT_MS,
  FRAME_STATUS,
  MANIFEST_PROTOCOL,
  MAX_MANIFEST_MESSAGE_BYTES,
  MAX_REQUEST_BYTES
} from '../../protocol/exchange/messages.ts'
import type { PeerIdString } from '../../protocol/ids.ts'
import type { Archive } from '../archive/archive.ts'
import type { ChunkStore } from '../archive/chunks.ts'
import type { AuditActor, AuditLog } from '../audit/log.ts'
import { ExchangeError } from '../errors.ts'
import type { Identity } from '../identity/keys.ts'
import type { MembershipRegistry } from '../membership/registry.ts'
import type { PeerPenalties } from '../p2p/penalties.ts'
import { encryptChunk, keyWrapVerifies, manifestVerifies, signKeyWrap, unwrapContentKey, wrapContentKey } from './crypto.ts'
import { type Availability, StudyFetch } from './fetch.ts'
import { offHeapGarbage } from '../heap.ts'
import { Recent } from './recent.ts'
import type { OpenVersion, StudyVersions } from './versions.ts'

export interface ExchangeOptions {
  libp2p: Libp2p
  identity: Identity
  consortiumId: string
  registry: MembershipRegistry
  penalties: PeerPenalties
  archive: Archive
  chunks: ChunkStore
  versions: StudyVersions
  audit: AuditLog
  log: Logger
}

/** Chunk requests of one stream read ahead and prepared while earlier ones are sent. */
const PREPARED_AHEAD = 4

export interface ShareResult { studyUid: string, versionId: string, recipients: Array<{ peerId: string, announced: boolean }> }

export class Exchange {
  readonly versions: StudyVersions
  private readonly options: ExchangeOptions
  private readonly log: Logger
  private readonly fetches = new Map<string, StudyFetch>()
  /** ciphertext chunks and files recently used to serve, so frames of one chunk do not repeat the work */
  private readonly sealedChunks = new Recent<string, Buffer>(16)
  private readonly files = new Recent<string, Buffer>(4)
  private stopped = false

  constructor (options: ExchangeOptions) {
    this.options = options
    this.versions = options.versions
    this.log = options.log
  }

  async start (): Promise<void> {
    const { libp2p } = this.options
    await libp2p.handle(MANIFEST_PROTOCOL, this.onManifestStream, { maxInboundStreams: 16, maxOutboundStreams: 16 })
    await libp2p.handle(CHUNKS_PROTOCOL, this.onChunksStream, { maxInboundStreams: 8, maxOutboundStreams: 8 })
    await libp2p.handle(ANNOUNCE_PROTOCOL, this.onAnnounceStream, { maxInboundStreams: 8, maxOutboundStreams: 8 })
    for (const [studyUid, actor] of await this.versions.unfinishedFetches()) {
      this.log.info({ event: 'fetch-resumed', study: studyUid }, `resuming the fetch of study ${studyUid}`)
      this.fetch(studyUid, actor as AuditActor)
    }
  }

  async stop (): Promise<void> {
    this.stopped = true
    for (const fetch of this.fetches.values()) fetch.stop()
    await Promise.all([...this.fetches.values()].map(async fetch => { await fetch.settled() }))
    for (const protocol of [MANIFEST_PROTOCOL, CHUNKS_PROTOCOL, ANNOUNCE_PROTOCOL]) await this.options.libp2p.unhandle(protocol)
  }

  // Sharing

  /**
   * Makes a study readable by members: publishes a version (the origin, when it has none or the archive
   * has changed), wraps its key for each, and announces it to them.
   */
  async share (studyUid: string, peerIds: string[], actor: AuditActor): Promise<ShareResult> {
    const { registry, archive, identity } = this.options
    for (const peerId of peerIds) {
      if (registry.isRevoked(peerId)) throw new ExchangeError('RADMESH_REVOKED', `${peerId} is revoked; a study key is never wrapped for a revoked member`)
      if (registry.certificateOf(peerId) === undefined || !registry.isMember(peerId)) {
        throw new ExchangeError('RADMESH_NOT_A_MEMBER', `${peerId} is not a member this node knows with a valid certificate; it must connect once before a study can be shared with it`)
      }
    }
    let version = await this.versions.openLatest(studyUid)
    const study = await archive.study(studyUid)
    const stale = version !== undefined && version.manifest.origin === identity.peerId && study !== undefined && study.instanceCount !== version.manifest.instanceCount
    if (version === undefined || stale) {
      // A stale version implies the study is in the archive: here there is no version at all.
      if (study === undefined) throw new ExchangeError('RADMESH_NOT_FOUND', `study ${studyUid} is not in this node's archive, and no version of it was shared with this node`)
      const started = performance.now()
      version = await this.versions.publish(archive, studyUid, { peerId: identity.peerId, privateKey: identity.privateKey, consortiumId: this.options.consortiumId })
      this.log.info({ event: 'study-published', study: studyUid, version: version.manifest.versionId, instances: version.manifest.instanceCount, chunks: version.manifest.chunkHashes.length, ms: Math.round(performance.now() - started) }, 'study version published')
    }
    const wraps: KeyWrap[] = []
    for (const peerId of peerIds) {
      const existing = await this.versions.wrapFor(studyUid, version.manifest.versionId, peerId)
      if (existing !== undefined) {
        wraps.push(existing)
        continue
      }
      const certificate = registry.certificateOf(peerId)
      if (certificate === undefined) continue
      const { ephemeralKey, wrappedKey } = wrapContentKey(version.key, certificate.wrapKey, studyUid, version.manifest.versionId)
      wraps.push(await signKeyWrap(identity.privateKey, {
        v: 1, studyUid, versionId: version.manifest.versionId, recipient: peerId as PeerIdString, ephemeralKey, wrappedKey, wrappedBy: identity.peerId, createdAt: new Date().toISOString()
      }))
    }
    await this.versions.addWraps(wraps)
    const recipients = await Promise.all(wraps.map(async wrap => ({ peerId: wrap.recipient as string, announced: await this.announce(version.manifest, wrap) })))
    await this.options.audit.append({ event: 'instancesTransferred', action: 'U', outcome: 0, actor, study: studyUid, detail: `shared with ${peerIds.join(', ')}` })
    return { studyUid, versionId: version.manifest.versionId, recipients }
  }

  private async announce (manifest: StudyManifest, wrap: KeyWrap): Promise<boolean> {
    const signal = AbortSignal.timeout(EXCHANGE_TIMEOUT_MS)
    try {
      const stream = await this.options.libp2p.dialProtocol(peerIdFromString(wrap.recipient), ANNOUNCE_PROTOCOL, { signal })
      const lp = lpStream(stream, { maxDataLength: MAX_REQUEST_BYTES + 1024 })
      await lp.write(encodeAnnouncement({ manifest, wraps: [wrap] }), { signal })
      const answer = decodeAnnouncementAnswer((await lp.read({ signal })).subarray())
      await stream.close({ signal })
      if (answer.status !== 'ok') this.log.warn({ event: 'announce-refused', peer: wrap.recipient, reason: answer.reason }, `${wrap.recipient} refused the announcement: ${answer.reason}`)
      return answer.status === 'ok'
    } catch (error) {
      this.log.info({ event: 'announce-failed', peer: wrap.recipient, study: manifest.studyUid, error: (error as Error).message }, 'could not announce the study now; the recipient can still fetch it')
      return false
    }
  }

  /** Checks a manifest from a peer: signature, consortium, origin a member. */
  async acceptableManifest (manifest: StudyManifest): Promise<boolean> {
    return manifest.consortiumId === this.options.consortiumId && this.options.registry.isMember(manifest.origin) && await manifestVerifies(manifest)
  }

  /** Opens a version with a wrap made for this node, after checking it; undefined when the wrap is not good. */
  async openWithWrap (manifest: StudyManifest, wrap: KeyWrap): Promise<OpenVersion | undefined> {
    const { identity, registry } = this.options
    if (wrap.recipient !== identity.peerId || wrap.studyUid !== manifest.studyUid || wrap.versionId !== manifest.versionId) return undefined
    if (!registry.isMember(wrap.wrappedBy) || !await keyWrapVerifies(wrap)) return undefined
    try {
      const key = unwrapContentKey(wrap, identity.wrapPrivateKey, identity.wrapPublicKey)
      await this.versions.remember(manifest, key, [wrap])
      return await this.versions.open(manifest)
    } catch (error) {
      this.log.warn({ event: 'bad-key-wrap', study: manifest.studyUid, by: wrap.wrappedBy, error: (error as Error).message }, 'a key wrap for this node does not open the study')
      return undefined
    }
  }

  // Fetching

  /** Starts fetching a study (or returns the fetch already running). */
  fetch (studyUid: string, actor: AuditActor): StudyFetch {
    const running = this.fetches.get(studyUid)
    if (running !== undefined && !running.finished) return running
    const fetch = new StudyFetch({ ...this.options, exchange: this, studyUid, actor })
    this.fetches.set(studyUid, fetch)
    fetch.start()
    const marked = this.versions.markFetching(studyUid, actor).catch((error: unknown) => { this.log.error({ err: error, study: studyUid }, 'could not record the fetch; it will not resume after a restart') })
    void fetch.settled().then(async () => {
      await marked
      const { state } = await fetch.availability()
      if (state === 'complete' || state === 'failed') await this.versions.fetchDone(studyUid)
    }).catch(() => {})
    return fetch
  }

  async availability (studyUid: string): Promise<Availability | undefined> {
    const running = this.fetches.get(studyUid)
    if (running !== undefined) return await running.availability()
    const version = await this.versions.openLatest(studyUid)
    if (version !== undefined) return await StudyFetch.availabilityOf(version, this.options.archive, 'idle')
    const study = await this.options.archive.study(studyUid)
    if (study === undefined) return undefined
    return { instancesTotal: study.instanceCount, instancesLocal: study.instanceCount, bytesTotal: study.bytes, bytesLocal: study.bytes, complete: true, state: 'complete' }
  }

  // Serving

  private readonly onManifestStream = async (stream: Stream, connection: Connection): Promise<void> => {
    const peer = connection.remotePeer.toString()
    const signal = AbortSignal.timeout(EXCHANGE_TIMEOUT_MS)
    try {
      const lp = lpStream(stream, { maxDataLength: MAX_REQUEST_BYTES })
      const { studyUid, knownVersion } = decodeManifestRequest((await lp.read({ signal })).subarray())
      const version = await this.versions.openLatest(studyUid)
      if (version === undefined) {
        await lp.write(encodeManifestResponse({ status: 'unknown-study' }), { signal })
      } else if (version.manifest.versionId === knownVersion) {
        await lp.write(encodeManifestResponse({ status: 'current', have: await this.have(version) }), { signal })
      } else {
        const wrap = await this.versions.wrapFor(studyUid, version.manifest.versionId, peer)
        await lp.write(encodeManifestResponse({ status: 'ok', manifest: version.manifest, wraps: wrap === undefined ? [] : [wrap], have: await this.have(version) }), { signal })
        await this.options.audit.append({ event: 'query', action: 'E', outcome: 0, actor: { type: 'peer', id: peer }, study: studyUid, detail: wrap === undefined ? 'manifest (no key for this peer)' : 'manifest and key wrap' })
      }
      await stream.close({ signal })
    } catch (error) {
      this.refuse(stream, peer, MANIFEST_PROTOCOL, error)
    }
  }

  /** Which chunks this node can serve: those of instances whole in its archive, and chunks it keeps. */
  async have (version: OpenVersion): Promise<Uint8Array> {
    const { manifest, index } = version
    const bits = new Uint8Array(Math.ceil(manifest.chunkHashes.length / 8))
    const set = (i: number): void => { bits[i >> 3] = (bits[i >> 3] as number) | (1 << (i & 7)) }
    for (const instance of index.instances) {
      const record = await this.options.archive.instance(instance.sopUid)
      if (record !== undefined && record.sha256 === instance.sha256) {
        for (let c = 0; c < instance.chunkCount; c++) set(instance.firstChunk + c)
      }
    }
    for (const chunkIndex of (await this.versions.partialChunks(manifest.studyUid, manifest.versionId)).keys()) set(chunkIndex)
    return bits
  }

  /** Chunk `index` of a version, sealed as in the manifest, or undefined when this node does not hold it. */
  async sealedChunk (version: OpenVersion, index: number): Promise<Buffer | undefined> {
    const { manifest, index: manifestIndex, key } = version
    const id = `${manifest.versionId}/${index}`
    const cached = this.sealedChunks.get(id)
    if (cached !== undefined) return cached
    const instance = manifestIndex.instances[version.instanceOfChunk[index] as number]
    if (instance === undefined) return undefined
    let sealed: Buffer | undefined
    let file = this.files.get(instance.sopUid)
    if (file === undefined) {
      const record = await this.options.archive.instance(instance.sopUid)
      if (record !== undefined && record.sha256 === instance.sha256) {
        file = await this.options.archive.read(record)
        this.files.set(instance.sopUid, file)
      }
    }
    if (file !== undefined) {
      // Every chunk of an instance but its last holds TRANSFER_CHUNK_PLAINTEXT bytes (see versions.ts publish).
      const start = (index - instance.firstChunk) * TRANSFER_CHUNK_PLAINTEXT
      const plaintextSize = (manifest.chunkSizes[index] as number) - 16
      sealed = encryptChunk(key, manifest.studyUid, manifest.versionId, index, index === manifest.chunkHashes.length - 1, file.subarray(start, start + plaintextSize))
    } else {
      // A reader part way through a large instance holds some of its chunks as they came.
      const hash = manifest.chunkHashes[index] as string
      if (!await this.options.chunks.has(hash)) return undefined
      sealed = await this.options.chunks.get(hash)
    }
    this.sealedChunks.set(id, sealed)
    return sealed
  }

  /**
   * Serves chunk requests in order. Requests are read ahead and their chunks prepared (read from the archive,
   * encrypted) up to PREPARED_AHEAD at a time while earlier ones are being sent, so the disk, the cipher and
   * the network work at once. The asker's own bound on bytes in flight keeps this short.
   */
  private readonly onChunksStream = async (stream: Stream, connection: Connection): Promise<void> => {
    const peer = connection.remotePeer.toString()
    const lp = lpStream(stream, { maxDataLength: MAX_REQUEST_BYTES })
    const audited = new Set<string>()
    type Prepared = { request: ChunkRequest, sealed: Buffer | undefined }
    const queue: Array<Promise<Prepared>> = []
    let reading = true
    let readError: unknown
    let more: () => void = () => {}
    let room: () => void = () => {}
    const reader = (async () => {
      try {
        while (!this.stopped) {
          while (queue.length >= PREPARED_AHEAD) await new Promise<void>(resolve => { room = resolve })
          let bytes: Uint8ArrayList
          try {
            bytes = await lp.read({ signal: AbortSignal.timeout(10 * EXCHANGE_TIMEOUT_MS) })
          } catch (error) {
            if (stream.remoteWriteStatus !== 'writable' || (error as Error).name === 'UnexpectedEOFError') break
            throw error
          }
          const request = decodeChunkRequest(bytes.subarray())
          const prepared = this.prepareChunk(request)
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
          await new Promise<void>(resolve => { more = resolve })
          continue
        }
        const { request, sealed } = await (queue.shift() as Promise<Prepared>)
        room()
        if (sealed === undefined) {
          await lp.write(encodeChunkFrameHeader(FRAME_STATUS.notHeld, request.index, request.offset))
          continue
        }
        if (!audited.has(request.studyUid)) {
          audited.add(request.studyUid)
          await this.options.audit.append({ event: 'instancesTransferred', action: 'R', outcome: 0, actor: { type: 'peer', id: peer }, study: request.studyUid, detail: 'encrypted chunks served' })
        }
        for (let offset = request.offset; offset < sealed.byteLength; offset += CHUNK_FRAME_BYTES) {
          await lp.write(new Uint8ArrayList(encodeChunkFrameHeader(FRAME_STATUS.data, request.index, offset), sealed.subarray(offset, offset + CHUNK_FRAME_BYTES)))
        }
        // The archive read, the plaintext slice's cipher output and the Noise frames are garbage soon (heap.ts).
        offHeapGarbage(3 * (sealed.byteLength - request.offset))
      }
      await reader
      if (readError !== undefined) throw readError
      await stream.close().catch(() => {})
    } catch (error) {
      this.refuse(stream, peer, CHUNKS_PROTOCOL, error)
    }
  }

  private async prepareChunk (request: ChunkRequest): Promise<{ request: ChunkRequest, sealed: Buffer | undefined }> {
    const manifest = await this.versions.manifest(request.studyUid)
    const version = manifest?.versionId === request.versionId ? await this.versions.open(manifest) : undefined
    const size = version?.manifest.chunkSizes[request.index]
    const sealed = version === undefined || size === undefined || request.offset >= size ? undefined : await this.sealedChunk(version, request.index)
    return { request, sealed }
  }

  private readonly onAnnounceStream = async (stream: Stream, connection: Connection): Promise<void> => {
    const peer = connection.remotePeer.toString()
    const signal = AbortSignal.timeout(EXCHANGE_TIMEOUT_MS)
    try {
      const lp = lpStream(stream, { maxDataLength: MAX_MANIFEST_MESSAGE_BYTES })
      const { manifest, wraps } = decodeAnnouncement((await lp.read({ signal })).subarray())
      let answer: { status: 'ok' } | { status: 'refused', reason: string } = { status: 'refused', reason: 'no key wrap for this member opens the study' }
      if (!await this.acceptableManifest(manifest)) {
        answer = { status: 'refused', reason: 'the manifest does not verify' }
        this.options.penalties.penalise(peer, 'bad-manifest', 5)
      } else {
        for (const wrap of wraps) {
          if (await this.openWithWrap(manifest, wrap) !== undefined) {
            answer = { status: 'ok' }
            break
          }
        }
      }
      if (answer.status === 'ok') this.log.info({ event: 'study-announced', study: manifest.studyUid, origin: manifest.origin, from: peer, instances: manifest.instanceCount }, 'a study was shared with this node')
      await lp.write(encodeAnnouncementAnswer(answer), { signal })
      await stream.close({ signal })
    } catch (error) {
      this.refuse(stream, peer, ANNOUNCE_PROTOCOL, error)
    }
  }

  private refuse (stream: Stream, peer: string, protocol: string, error: unknown): void {
    const message = (error as Error).message
    const malformed = (error as Error).name === 'MalformedMessageError' || (error as Error).name === 'InvalidDataLengthError'
    if (malformed) this.options.penalties.penalise(peer, 'malformed-message')
    this.log.warn({ event: malformed ? 'bad-message' : 'stream-failed', protocol, peer, error: message }, `reset a ${protocol} stream from ${peer}: ${message}`)
    stream.abort(error as Error)
  }
}

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
import {
  CHUNK_TAG_BYTES,
  type KeyWrap,
  type StudyManifest,
  TRANSFER_CHUNK_PLAINTEXT
} from '../../protocol/exchange/manifest.ts'
import type { AnnouncementAnswer, ChunkRequest } from '../../protocol/exchange/messages.ts'
import {
  ANNOUNCE_PROTOCOL,
  CHUNK_FRAME_BYTES,
  CHUNK_REQUEST_IDLE_MS,
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
import { CLOCK_SKEW_MS } from '../membership/trust.ts'
import { type PeerPenalties, type RefusalCode, refusalCodeOf } from '../p2p/penalties.ts'
import { type MessageStream, messageStream, TruncatedMessageError } from '../p2p/wire.ts'
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
  /** how long a request, an answer or one chunk frame may take (EXCHANGE_TIMEOUT_MS unless given: tests shorten it) */
  timeoutMs?: number
}

/** Chunk requests of one stream read ahead and prepared while earlier ones are sent. */
const PREPARED_AHEAD = 4

/** Who sent something, and on which protocol: what a refusal of it is logged and counted against. */
export interface Sender { peer: string, protocol: string }

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
  private readonly timeoutMs: number

  constructor (options: ExchangeOptions) {
    this.options = options
    this.versions = options.versions
    this.log = options.log
    this.timeoutMs = options.timeoutMs ?? EXCHANGE_TIMEOUT_MS
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
    const mine = version?.manifest.origin === identity.peerId
    const stale = version !== undefined && mine && study !== undefined &&
      study.instanceCount !== version.manifest.instanceCount
    // Another origin's version is passed on (a reader inviting a consultant) only if it is the study held here:
    // one that a member made of this node's study UID before this node shared it must not stand for it.
    const foreign = version !== undefined && !mine && study !== undefined && !await this.holdsOnly(version, studyUid)
    if (foreign) {
      this.log.warn({ event: 'foreign-version-replaced', study: studyUid, origin: version?.manifest.origin },
        `the version of study ${studyUid} known here is not the study in this archive; publishing this node's own`)
    }
    if (version === undefined || stale || foreign) {
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

  /** Whether every instance of the study in the archive is one of the version's, with the same SHA-256. */
  private async holdsOnly (version: OpenVersion, studyUid: string): Promise<boolean> {
    const listed = new Map(version.index.instances.map(instance => [instance.sopUid, instance.sha256]))
    for await (const instance of this.options.archive.instancesOf(studyUid)) {
      if (listed.get(instance.sopUid) !== instance.sha256) return false
    }
    return true
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

  /**
   * Why a version a peer offers (announced, or in answer to a manifest request) must not be taken, or
   * undefined when it may: signed by a member of this consortium, dated no later than clocks drift (a date
   * far ahead would outrank every honest version), and not a version of a study whose versions come from
   * another origin (a member cannot replace a site's study, or this node's own, with a study of its making).
   */
  async versionRefusal (manifest: StudyManifest): Promise<{ code: RefusalCode, error: string } | undefined> {
    if (!await this.acceptableManifest(manifest)) {
      const error = `the manifest of study ${manifest.studyUid} does not verify (signature, consortium or origin)`
      return { code: 'bad-manifest', error }
    }
    if (Date.parse(manifest.createdAt) > Date.now() + CLOCK_SKEW_MS) {
      const error = `the manifest of study ${manifest.studyUid} is dated ${manifest.createdAt}`
      return { code: 'manifest-from-the-future', error }
    }
    const current = await this.versions.manifest(manifest.studyUid)
    if (current !== undefined && current.origin !== manifest.origin) {
      const error = `study ${manifest.studyUid} comes from ${current.origin}, not ${manifest.origin}`
      return { code: 'foreign-version', error }
    }
    return undefined
  }

  /**
   * Opens a version with a wrap made for this node, after checking the wrap and the version's index
   * against its manifest; only then is anything of it stored. Undefined when the wrap is not for this
   * node or does not hold; what `from` sent that cannot be honest is counted against it.
   */
  async openWithWrap (manifest: StudyManifest, wrap: KeyWrap, from: Sender): Promise<OpenVersion | undefined> {
    const { identity, registry, penalties } = this.options
    if (wrap.recipient !== identity.peerId || wrap.studyUid !== manifest.studyUid) return undefined
    if (wrap.versionId !== manifest.versionId) return undefined
    const refuse = (code: 'bad-key-wrap' | 'bad-manifest-index', error: string): undefined => {
      const detail = { study: manifest.studyUid, by: wrap.wrappedBy }
      penalties.refuse(this.log, { ...from, code, event: code, error, detail })
      return undefined
    }
    if (!registry.isMember(wrap.wrappedBy) || !await keyWrapVerifies(wrap)) {
      return refuse('bad-key-wrap', 'a key wrap for this node whose signature does not verify, or by a non-member')
    }
    let key: Buffer
    try {
      key = unwrapContentKey(wrap, identity.wrapPrivateKey, identity.wrapPublicKey)
    } catch (error) {
      return refuse('bad-key-wrap', `a key wrap for this node does not open: ${(error as Error).message}`)
    }
    try {
      return await this.versions.adopt(manifest, key, [wrap])
    } catch (error) {
      return refuse('bad-manifest-index', `the version's sealed index does not hold: ${(error as Error).message}`)
    }
  }

  // Fetching

  /** Starts fetching a study (or returns the fetch already running). */
  fetch (studyUid: string, actor: AuditActor, options: { origin?: string } = {}): StudyFetch {
    const running = this.fetches.get(studyUid)
    if (running !== undefined && !running.finished) return running
    const fetch = new StudyFetch({ ...this.options, exchange: this, studyUid, actor, origin: options.origin })
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
    const signal = AbortSignal.timeout(this.timeoutMs)
    try {
      const lp = messageStream(stream, { maxDataLength: MAX_REQUEST_BYTES, messageTimeoutMs: this.timeoutMs })
      const { studyUid, knownVersion } = decodeManifestRequest(await readOne(lp, signal, 'manifest request'))
      const version = await this.versions.openLatest(studyUid)
      if (version === undefined) {
        await lp.write(encodeManifestResponse({ status: 'unknown-study' }), signal)
      } else if (version.manifest.versionId === knownVersion) {
        await lp.write(encodeManifestResponse({ status: 'current', have: await this.have(version) }), signal)
      } else {
        const wrap = await this.versions.wrapFor(studyUid, version.manifest.versionId, peer)
        const wraps = wrap === undefined ? [] : [wrap]
        const have = await this.have(version)
        await lp.write(encodeManifestResponse({ status: 'ok', manifest: version.manifest, wraps, have }), signal)
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
      const plaintextSize = (manifest.chunkSizes[index] as number) - CHUNK_TAG_BYTES
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
    const lp = messageStream(stream, { maxDataLength: MAX_REQUEST_BYTES, messageTimeoutMs: this.timeoutMs })
    // An asker that stops taking frames holds a stream and the chunks prepared for it: not for longer than this.
    const write = async (data: Uint8Array | Uint8ArrayList): Promise<void> => {
      await lp.write(data, undefined, this.timeoutMs)
    }
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
          const bytes = await lp.read(undefined, CHUNK_REQUEST_IDLE_MS)
          if (bytes === undefined) break
          const request = decodeChunkRequest(bytes)
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
          await write(encodeChunkFrameHeader(FRAME_STATUS.notHeld, request.index, request.offset))
          continue
        }
        if (!audited.has(request.studyUid)) {
          audited.add(request.studyUid)
          await this.options.audit.append({ event: 'instancesTransferred', action: 'R', outcome: 0, actor: { type: 'peer', id: peer }, study: request.studyUid, detail: 'encrypted chunks served' })
        }
        for (let offset = request.offset; offset < sealed.byteLength; offset += CHUNK_FRAME_BYTES) {
          const header = encodeChunkFrameHeader(FRAME_STATUS.data, request.index, offset)
          await write(new Uint8ArrayList(header, sealed.subarray(offset, offset + CHUNK_FRAME_BYTES)))
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
    const signal = AbortSignal.timeout(this.timeoutMs)
    try {
      const lp = messageStream(stream, { maxDataLength: MAX_MANIFEST_MESSAGE_BYTES, messageTimeoutMs: this.timeoutMs })
      const { manifest, wraps } = decodeAnnouncement(await readOne(lp, signal, 'announcement'))
      let answer: AnnouncementAnswer = { status: 'refused', reason: 'no key wrap for this member opens the study' }
      const refusal = await this.versionRefusal(manifest)
      if (refusal !== undefined) {
        answer = { status: 'refused', reason: refusal.error }
        this.options.penalties.refuse(this.log, {
          peer,
          protocol: ANNOUNCE_PROTOCOL,
          code: refusal.code,
          event: 'announce-refused',
          error: refusal.error,
          detail: { study: manifest.studyUid }
        })
      } else {
        for (const wrap of wraps) {
          if (await this.openWithWrap(manifest, wrap, { peer, protocol: ANNOUNCE_PROTOCOL }) !== undefined) {
            answer = { status: 'ok' }
            break
          }
        }
      }
      if (answer.status === 'ok') this.log.info({ event: 'study-announced', study: manifest.studyUid, origin: manifest.origin, from: peer, instances: manifest.instanceCount }, 'a study was shared with this node')
      await lp.write(encodeAnnouncementAnswer(answer), signal)
      await stream.close({ signal })
    } catch (error) {
      this.refuse(stream, peer, ANNOUNCE_PROTOCOL, error)
    }
  }

  /** Resets a stream that failed; what the peer caused (refusal-codes in penalties.ts) is logged and counted. */
  private refuse (stream: Stream, peer: string, protocol: string, error: unknown): void {
    const message = (error as Error).message
    const code = refusalCodeOf(error)
    if (code === undefined) {
      this.log.info({ event: 'stream-failed', protocol, peer, error: message }, `a stream failed: ${message}`)
    }
    else this.options.penalties.refuse(this.log, { peer, protocol, code, event: 'bad-message', error: message })
    stream.abort(error as Error)
  }
}

/** The one message of a request stream: a stream that ends before it is a truncated message. */
async function readOne (lp: MessageStream, signal: AbortSignal, what: string): Promise<Uint8Array> {
  const bytes = await lp.read(signal)
  if (bytes === undefined) throw new TruncatedMessageError(`the stream ended before the ${what}`)
  return bytes
}

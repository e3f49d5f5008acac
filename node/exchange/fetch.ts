/**
 * Fetching one study: find its manifest and a key wrap for this node, then pull the chunks of every
 * instance not yet in the archive from every connected member that holds them, verify each against the
 * manifest, decrypt and store whole instances in the archive.
 *
 * - **Pull, bounded.** Per peer, one `/radmesh/chunks/1.0.0` stream; requests are sent while the bytes
 *   asked for and not yet received stay under WINDOW_BYTES, so memory and the bytes a dropped link wastes
 *   stay bounded. A chunk's frames received before a link drops are kept; the chunk is asked for again from
 *   the offset reached, from whichever holder is free.
 * - **Order for reading.** Chunks are asked for in manifest order, which is reading order (every series'
 *   first images first), so the first image is local after one chunk.
 * - **Verified, then durable.** A chunk whose SHA-256 is not the manifest's is dropped, its sender is
 *   penalised and not asked again in this fetch. An instance whose chunks are all verified is decrypted,
 *   checked against its plaintext SHA-256 and stored by the archive (synced, audited). Chunks of an instance
 *   that spans several chunks are kept in the content store as they arrive, so a restart resumes from them.
 * - **Links drop.** A peer whose stream fails is retried with backoff (1 s doubling to 30 s), or at once
 *   when it connects again (the redialer has waited out the link's own backoff); peers are asked again
 *   which chunks they hold; the fetch goes on until every instance is in or it is stopped.
 */
import type { Connection, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import type { Logger } from 'pino'
import type { KeyWrap, ManifestInstance, StudyManifest } from '../../protocol/exchange/manifest.ts'
import {
  CHUNKS_PROTOCOL,
  decodeChunkFrame,
  decodeManifestResponse,
  encodeChunkRequest,
  encodeManifestRequest,
  EXCHANGE_TIMEOUT_MS,
  FRAME_STATUS,
  MANIFEST_PROTOCOL,
  MAX_CHUNK_FRAME_MESSAGE_BYTES,
  MAX_MANIFEST_MESSAGE_BYTES
} from '../../protocol/exchange/messages.ts'
import type { Archive } from '../archive/archive.ts'
import { sha256Hex } from '../archive/chunks.ts'
import type { AuditActor } from '../audit/log.ts'
import { refusalCodeOf } from '../p2p/penalties.ts'
import { decryptChunk } from './crypto.ts'
import type { Exchange, ExchangeOptions } from './exchange.ts'
import type { OpenVersion } from './versions.ts'
import { offHeapGarbage } from '../heap.ts'

/** Bytes asked for and not yet received, per peer. */
export const WINDOW_BYTES = 4 * 1024 * 1024
/**
 * Instances being stored at once. A puller whose chunks complete more instances than this waits, so
 * verified bytes held in memory stay bounded and the archive's group commits stay full but short.
 */
const IMPORTS_IN_FLIGHT = 8
/**
 * Streams per peer, sharing the window. Four lanes measured only ~8 % faster on loopback, and over a link
 * cut every 3 s they sometimes stalled with two chunks never answered (not understood yet), so one lane.
 */
const LANES_PER_PEER = 1
const BACKOFF_MIN_MS = 1_000
const BACKOFF_MAX_MS = 30_000

export type FetchState = 'idle' | 'finding' | 'fetching' | 'complete' | 'failed' | 'stopped'

export interface Availability {
  instancesTotal: number
  instancesLocal: number
  bytesTotal: number
  bytesLocal: number
  complete: boolean
  state: FetchState
  error?: string
  /** members chunks came from in this fetch, with bytes */
  sources?: Record<string, number>
}

export interface StudyFetchOptions extends ExchangeOptions {
  exchange: Exchange
  studyUid: string
  actor: AuditActor
  /** the member whose versions of the study are taken (a case's site): another member's are not, however new */
  origin?: string | undefined
}

interface Wanted { index: number, received: Buffer[], offset: number }

/** A chunk frame for another chunk or offset than asked for, or with more bytes than the chunk has. */
class BadFrameError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'BadFrameError'
  }
}

export class StudyFetch {
  private readonly o: StudyFetchOptions
  private readonly log: Logger
  private readonly abort = new AbortController()
  private state: FetchState = 'idle'
  private error: string | undefined
  private version: OpenVersion | undefined
  /** per instance (manifest order): whole in the archive */
  private instanceDone: Uint8Array = new Uint8Array()
  private instancesLocal = 0
  private bytesLocal = 0
  /** per chunk: 0 wanted, 1 being fetched, 2 verified */
  private chunkState: Uint8Array = new Uint8Array()
  /** frames received of chunks not complete, kept across dropped links */
  private readonly partial = new Map<number, Wanted>()
  /** verified chunks (sealed) of instances not yet whole */
  private readonly verified = new Map<number, Buffer>()
  private readonly verifiedCount = new Map<number, number>()
  private next = 0
  private readonly workers = new Map<string, Promise<void>>()
  private readonly excluded = new Set<string>()
  private readonly retryAt = new Map<string, { at: number, delay: number }>()
  private readonly sources: Record<string, number> = {}
  private readonly imports = new Set<Promise<void>>()
  private run: Promise<void> = Promise.resolve()
  private wake: () => void = () => {}
  finished = false

  constructor (options: StudyFetchOptions) {
    this.o = options
    this.log = options.log.child({ study: options.studyUid })
  }

  start (): void {
    this.run = this.main().catch((error: unknown) => {
      this.state = 'failed'
      this.error = (error as Error).message
      this.log.warn({ event: 'fetch-failed', error: this.error }, `fetch of study ${this.o.studyUid} failed: ${this.error}`)
    }).finally(() => { this.finished = true })
  }

  stop (): void {
    if (!this.finished) this.state = 'stopped'
    this.abort.abort()
  }

  async settled (): Promise<void> {
    await this.run
    await Promise.allSettled([...this.workers.values(), ...this.imports])
  }

  static async availabilityOf (version: OpenVersion, archive: Archive, state: FetchState): Promise<Availability> {
    let instancesLocal = 0
    let bytesLocal = 0
    for (const instance of version.index.instances) {
      const record = await archive.instance(instance.sopUid)
      if (record !== undefined && record.sha256 === instance.sha256) {
        instancesLocal++
        bytesLocal += instance.size
      }
    }
    const complete = instancesLocal === version.manifest.instanceCount
    return { instancesTotal: version.manifest.instanceCount, instancesLocal, bytesTotal: version.manifest.bytes, bytesLocal, complete, state: complete ? 'complete' : state }
  }

  async availability (): Promise<Availability> {
    const version = this.version
    const base = version === undefined
      ? { instancesTotal: 0, instancesLocal: 0, bytesTotal: 0, bytesLocal: 0, complete: false }
      : { instancesTotal: version.manifest.instanceCount, instancesLocal: this.instancesLocal, bytesTotal: version.manifest.bytes, bytesLocal: this.bytesLocal, complete: this.instancesLocal === version.manifest.instanceCount }
    return { ...base, state: this.state, ...(this.error === undefined ? {} : { error: this.error }), sources: { ...this.sources } }
  }

  private members (): string[] {
    const self = this.o.libp2p.peerId.toString()
    const peers = new Set(this.o.libp2p.getConnections().filter(c => c.status === 'open').map(c => c.remotePeer.toString()))
    return [...peers].filter(peer => peer !== self && this.o.registry.isMember(peer) && !this.o.penalties.isBanned(peer))
  }

  private async main (): Promise<void> {
    // A member that (re)connects is asked at once: the redialer has already waited out the link's backoff.
    const onConnection = (event: CustomEvent<Connection>): void => {
      this.retryAt.delete(event.detail.remotePeer.toString())
      this.wake()
    }
    this.o.libp2p.addEventListener('connection:open', onConnection)
    try {
      await this.fetchAll()
    } finally {
      this.o.libp2p.removeEventListener('connection:open', onConnection)
    }
  }

  /** Waits `ms`, or less when a member connects, a puller ends or the fetch stops. */
  private async pause (ms: number): Promise<void> {
    await new Promise<void>(resolve => {
      const timer = setTimeout(resolve, ms)
      timer.unref()
      this.wake = () => {
        clearTimeout(timer)
        resolve()
      }
      this.abort.signal.addEventListener('abort', this.wake, { once: true })
    })
  }

  private async fetchAll (): Promise<void> {
    const started = performance.now()
    this.state = 'finding'
    this.version = await this.findVersion()
    const { manifest, index } = this.version
    this.instanceDone = new Uint8Array(index.instances.length)
    this.chunkState = new Uint8Array(manifest.chunkHashes.length)
    for (const [i, instance] of index.instances.entries()) {
      const record = await this.o.archive.instance(instance.sopUid)
      if (record !== undefined && record.sha256 === instance.sha256) {
        this.markInstanceDone(i, instance)
        this.chunkState.fill(2, instance.firstChunk, instance.firstChunk + instance.chunkCount)
      }
    }
    for (const [chunkIndex, hash] of await this.o.versions.partialChunks(manifest.studyUid, manifest.versionId)) {
      if (this.chunkState[chunkIndex] === 2 || manifest.chunkHashes[chunkIndex] !== hash || !await this.o.chunks.has(hash)) continue
      this.chunkState[chunkIndex] = 2
      const instance = this.version.instanceOfChunk[chunkIndex] as number
      this.verifiedCount.set(instance, (this.verifiedCount.get(instance) ?? 0) + 1)
    }
    const resumed = this.instancesLocal
    this.state = 'fetching'
    this.log.info({ event: 'fetch-started', version: manifest.versionId, instances: manifest.instanceCount, local: resumed }, `fetching study ${manifest.studyUid}: ${manifest.instanceCount - resumed} of ${manifest.instanceCount} instances to get`)
    // Instances whose chunks were all kept before a restart are stored now.
    for (const [instance, count] of this.verifiedCount) {
      const entry = index.instances[instance] as ManifestInstance
      if (count === entry.chunkCount && this.instanceDone[instance] === 0) this.importInstance(instance, 'resumed')
    }
    await this.pullUntilComplete()
    await Promise.allSettled([...this.workers.values()])
    await Promise.allSettled([...this.imports])
    if (this.abort.signal.aborted && !this.complete()) return
    if (!this.complete()) throw new Error('the fetch ended before every instance was stored')
    this.state = 'complete'
    const seconds = (performance.now() - started) / 1000
    this.log.info({ event: 'fetch-complete', version: manifest.versionId, instances: manifest.instanceCount, bytes: manifest.bytes, seconds, sources: this.sources }, `study ${manifest.studyUid} complete: ${manifest.instanceCount} instances in ${seconds.toFixed(1)} s`)
    await this.o.audit.append({ event: 'instancesTransferred', action: 'C', outcome: 0, actor: this.o.actor, study: manifest.studyUid, detail: `fetched ${manifest.instanceCount} instances from ${Object.keys(this.sources).join(', ') || 'the local archive'}` })
  }

  /** Starts a puller for every connected holder, again whenever one ends or a member connects, until done. */
  private async pullUntilComplete (): Promise<void> {
    while (!this.complete() && !this.abort.signal.aborted) {
      const now = Date.now()
      for (const peer of this.members()) {
        if (this.workers.has(peer) || this.excluded.has(peer) || (this.retryAt.get(peer)?.at ?? 0) > now) continue
        const worker = this.pullFrom(peer).finally(() => {
          this.workers.delete(peer)
          this.wake()
        })
        this.workers.set(peer, worker)
      }
      await this.pause(BACKOFF_MIN_MS)
    }
  }

  private complete (): boolean {
    return this.version !== undefined && this.instancesLocal === this.version.manifest.instanceCount
  }

  private markInstanceDone (i: number, instance: ManifestInstance): void {
    if (this.instanceDone[i] === 1) return
    this.instanceDone[i] = 1
    this.instancesLocal++
    this.bytesLocal += instance.size
  }

  /** The newest version this node can read: its own, or one found by asking connected members. */
  private async findVersion (): Promise<OpenVersion> {
    const { exchange, studyUid } = this.o
    let backoff = BACKOFF_MIN_MS
    while (!this.abort.signal.aborted) {
      const latest = await this.o.versions.openLatest(studyUid)
      const local = latest !== undefined && (this.o.origin === undefined || latest.manifest.origin === this.o.origin) ? latest : undefined
      const found: Array<{ manifest: StudyManifest, wraps: KeyWrap[], peer: string }> = []
      for (const peer of this.members()) {
        const answer = await this.askManifest(peer).catch((error: unknown) => { this.refusedAnswer(peer, error) })
        if (answer?.status !== 'ok') continue
        const refusal = this.o.origin !== undefined && answer.manifest.origin !== this.o.origin
          ? { code: 'foreign-version' as const, error: `study ${studyUid} comes from ${this.o.origin}, not ${answer.manifest.origin}` }
          : await exchange.versionRefusal(answer.manifest)
        if (refusal === undefined) {
          found.push({ manifest: answer.manifest, wraps: answer.wraps, peer })
          continue
        }
        // A holder passes on the versions it has: one of a study this node follows from another origin may be honest.
        this.o.penalties.refuse(this.log, {
          peer,
          protocol: MANIFEST_PROTOCOL,
          code: refusal.code,
          event: 'manifest-refused',
          error: refusal.error,
          ...(refusal.code === 'foreign-version' ? { weight: 0 } : {})
        })
      }
      found.sort((a, b) => Date.parse(b.manifest.createdAt) - Date.parse(a.manifest.createdAt))
      for (const { manifest, wraps, peer } of found) {
        if (local !== undefined && Date.parse(local.manifest.createdAt) >= Date.parse(manifest.createdAt)) break
        for (const wrap of wraps) {
          const opened = await exchange.openWithWrap(manifest, wrap, { peer, protocol: MANIFEST_PROTOCOL })
          if (opened !== undefined) return opened
        }
      }
      if (local !== undefined) return local
      if (found.length > 0) throw new Error(`this node is not a recipient of study ${studyUid}: no member holds a key wrap for it; ask the site to share the study with ${this.o.libp2p.peerId.toString()}`)
      this.log.info({ event: 'fetch-waiting', backoffMs: backoff }, `no connected member knows study ${studyUid} yet; asking again in ${backoff / 1000} s, or when a member connects`)
      await this.pause(backoff)
      backoff = Math.min(BACKOFF_MAX_MS, backoff * 2)
    }
    throw new Error('stopped')
  }

  /** An answer that cannot be honest (malformed, oversized, cut short) counts against the holder; a lost link not. */
  private refusedAnswer (peer: string, error: unknown): void {
    const code = refusalCodeOf(error)
    if (code === undefined) return
    const protocol = MANIFEST_PROTOCOL
    this.o.penalties.refuse(this.log, { peer, protocol, code, event: 'bad-message', error: (error as Error).message })
  }

  /** With `known`, a peer whose latest version is that one answers only which chunks it holds. */
  private async askManifest (peer: string, known?: StudyManifest): Promise<ReturnType<typeof decodeManifestResponse>> {
    const signal = AbortSignal.any([AbortSignal.timeout(EXCHANGE_TIMEOUT_MS), this.abort.signal])
    const stream = await this.o.libp2p.dialProtocol(peerIdFromString(peer), MANIFEST_PROTOCOL, { signal })
    try {
      const lp = lpStream(stream, { maxDataLength: MAX_MANIFEST_MESSAGE_BYTES })
      await lp.write(encodeManifestRequest({ studyUid: this.o.studyUid, ...(known === undefined ? {} : { knownVersion: known.versionId }) }), { signal })
      const answer = decodeManifestResponse((await lp.read({ signal })).subarray(), known?.chunkHashes.length)
      await stream.close({ signal }).catch(() => {})
      return answer
    } catch (error) {
      stream.abort(error as Error)
      throw error
    }
  }

  /** The next chunk this peer holds that no one is fetching, in manifest order. */
  private take (have: Uint8Array): number {
    const state = this.chunkState
    for (let i = this.next; i < state.length; i++) {
      if (state[i] !== 0) {
        if (i === this.next) this.next++
        continue
      }
      if (((have[i >> 3] as number) & (1 << (i & 7))) === 0) continue
      state[i] = 1
      return i
    }
    return -1
  }

  private release (index: number): void {
    if (this.chunkState[index] === 1) this.chunkState[index] = 0
    if (index < this.next) this.next = index
  }

  /** Pulls from one peer over LANES_PER_PEER streams until it has nothing more this fetch needs. */
  private async pullFrom (peer: string): Promise<void> {
    const version = this.version as OpenVersion
    const lanes = new AbortController()
    const signal = AbortSignal.any([this.abort.signal, lanes.signal])
    const progress = { made: false }
    try {
      const answer = await this.askManifest(peer, version.manifest)
      if (answer.status === 'unknown-study' || (answer.status === 'ok' && answer.manifest.versionId !== version.manifest.versionId)) return
      // Every lane has ended (and given back its chunks) before this puller does: one failing stops the others.
      const results = await Promise.allSettled(Array.from({ length: LANES_PER_PEER }, async () => {
        try {
          await this.lane(peer, answer.have, signal, progress)
        } catch (error) {
          lanes.abort(error)
          throw error
        }
      }))
      const failed = results.find(result => result.status === 'rejected')
      if (failed !== undefined) throw failed.reason
      this.retryAt.delete(peer)
    } catch (error) {
      if (this.abort.signal.aborted || this.excluded.has(peer)) return
      const previous = this.retryAt.get(peer)?.delay ?? 0
      const delay = progress.made ? BACKOFF_MIN_MS : Math.min(BACKOFF_MAX_MS, Math.max(BACKOFF_MIN_MS, previous * 2))
      const jittered = Math.round(delay * (0.8 + Math.random() * 0.4))
      this.retryAt.set(peer, { at: Date.now() + jittered, delay })
      this.log.info({ event: 'fetch-link-lost', peer, error: (error as Error).message, retryInMs: jittered }, `lost the link to ${peer} while fetching (${(error as Error).message}); trying again in ${(jittered / 1000).toFixed(1)} s`)
    }
  }

  /** One chunks stream to a peer: requests kept under the lane's share of the window, frames checked in order. */
  private async lane (peer: string, have: Uint8Array, signal: AbortSignal, progress: { made: boolean }): Promise<void> {
    const { manifest } = this.version as OpenVersion
    const window = WINDOW_BYTES / LANES_PER_PEER
    const inFlight: Wanted[] = []
    let stream: Stream | undefined
    let onAbort: (() => void) | undefined
    try {
      stream = await this.o.libp2p.dialProtocol(peerIdFromString(peer), CHUNKS_PROTOCOL, { signal: AbortSignal.any([AbortSignal.timeout(EXCHANGE_TIMEOUT_MS), signal]) })
      // Stopping the lane resets its stream, so no read or write of it waits on a dead link.
      const opened = stream
      onAbort = () => { opened.abort(new Error('the fetch stopped pulling from this peer')) }
      signal.addEventListener('abort', onAbort, { once: true })
      if (signal.aborted) onAbort()
      // Room for a whole window of frames while this lane waits on the archive.
      const lp = lpStream(stream, { maxDataLength: MAX_CHUNK_FRAME_MESSAGE_BYTES, maxBufferSize: 2 * WINDOW_BYTES })
      let outstanding = 0
      const pump = async (): Promise<void> => {
        while (outstanding < window && !signal.aborted) {
          const index = this.take(have)
          if (index < 0) return
          const wanted = this.partial.get(index) ?? { index, received: [], offset: 0 }
          this.partial.set(index, wanted)
          inFlight.push(wanted)
          outstanding += (manifest.chunkSizes[index] as number) - wanted.offset
          await lp.write(encodeChunkRequest({ studyUid: manifest.studyUid, versionId: manifest.versionId, index, offset: wanted.offset }), { signal })
        }
      }
      await pump()
      while (inFlight.length > 0 && !signal.aborted) {
        const frame = decodeChunkFrame((await lp.read({ signal: AbortSignal.any([AbortSignal.timeout(EXCHANGE_TIMEOUT_MS), signal]) })).subarray())
        const head = inFlight[0] as Wanted
        if (frame.index !== head.index || frame.offset !== head.offset) {
          throw new BadFrameError(`a frame of chunk ${frame.index}@${frame.offset}, not ${head.index}@${head.offset}`)
        }
        const size = manifest.chunkSizes[head.index] as number
        if (frame.status === FRAME_STATUS.notHeld) {
          inFlight.shift()
          outstanding -= size - head.offset
          have[head.index >> 3] = (have[head.index >> 3] as number) & ~(1 << (head.index & 7))
          this.release(head.index)
          await pump()
          continue
        }
        if (head.offset + frame.bytes.byteLength > size) {
          throw new BadFrameError(`${peer} sent more bytes than chunk ${head.index} has`)
        }
        head.received.push(Buffer.from(frame.bytes))
        head.offset += frame.bytes.byteLength
        outstanding -= frame.bytes.byteLength
        this.sources[peer] = (this.sources[peer] ?? 0) + frame.bytes.byteLength
        if (head.offset < size) continue
        inFlight.shift()
        this.partial.delete(head.index)
        const sealed = Buffer.concat(head.received)
        if (sha256Hex(sealed) !== manifest.chunkHashes[head.index]) {
          this.release(head.index)
          this.excluded.add(peer)
          this.o.penalties.refuse(this.log, {
            peer,
            protocol: CHUNKS_PROTOCOL,
            code: 'corrupt-chunk',
            event: 'corrupt-chunk',
            error: `chunk ${head.index} has the wrong SHA-256: dropped, asked of another holder; the peer is left out`,
            detail: { chunk: head.index }
          })
          throw new Error(`corrupt chunk ${head.index} from ${peer}`)
        }
        progress.made = true
        await this.accept(head.index, sealed, peer)
        await pump()
      }
      await stream.close().catch(() => {})
    } catch (error) {
      // Frames already received stay in `partial`: the chunk is asked for again from where it stopped.
      for (const wanted of inFlight) this.release(wanted.index)
      stream?.abort(error as Error)
      // A frame that breaks the protocol is no dropped link: the peer is not asked again in this fetch.
      const code = error instanceof BadFrameError ? 'bad-chunk-frame' : refusalCodeOf(error)
      if (code === 'bad-chunk-frame' || code === 'malformed-message' || code === 'oversized-message') {
        this.excluded.add(peer)
        const protocol = CHUNKS_PROTOCOL
        const message = (error as Error).message
        this.o.penalties.refuse(this.log, { peer, protocol, code, event: 'bad-chunk-frame', error: message })
      }
      throw error
    } finally {
      if (onAbort !== undefined) signal.removeEventListener('abort', onAbort)
    }
  }

  /** A verified chunk: kept (if its instance spans several) and, once its instance is whole, stored. */
  private async accept (index: number, sealed: Buffer, peer: string): Promise<void> {
    const version = this.version as OpenVersion
    const instanceIndex = version.instanceOfChunk[index] as number
    const instance = version.index.instances[instanceIndex] as ManifestInstance
    this.chunkState[index] = 2
    if (instance.chunkCount > 1) {
      const incoming = this.o.archive.incoming()
      incoming.write(sealed)
      const { chunks } = incoming.finish()
      incoming.release()
      const { operations } = await this.o.chunks.put(chunks)
      await this.o.versions.storeBatch([...operations, this.o.versions.partialChunkPut(version.manifest.studyUid, version.manifest.versionId, index, version.manifest.chunkHashes[index] as string)])
    }
    this.verified.set(index, sealed)
    const count = (this.verifiedCount.get(instanceIndex) ?? 0) + 1
    this.verifiedCount.set(instanceIndex, count)
    if (count === instance.chunkCount) {
      while (this.imports.size >= IMPORTS_IN_FLIGHT) await Promise.race(this.imports)
      this.importInstance(instanceIndex, peer)
    }
  }

  private importInstance (instanceIndex: number, peer: string): void {
    const work = this.storeInstance(instanceIndex, peer).catch((error: unknown) => {
      this.state = 'failed'
      this.error = `instance ${instanceIndex + 1} could not be stored: ${(error as Error).message}`
      this.log.error({ event: 'fetch-store-failed', error: this.error }, this.error)
      this.abort.abort()
    })
    this.imports.add(work)
    void work.finally(() => this.imports.delete(work))
  }

  private async storeInstance (instanceIndex: number, peer: string): Promise<void> {
    const version = this.version as OpenVersion
    const { manifest, key } = version
    const instance = version.index.instances[instanceIndex] as ManifestInstance
    const pieces: Buffer[] = []
    for (let c = instance.firstChunk; c < instance.firstChunk + instance.chunkCount; c++) {
      const sealed = this.verified.get(c) ?? await this.o.chunks.get(manifest.chunkHashes[c] as string)
      pieces.push(decryptChunk(key, manifest.studyUid, manifest.versionId, c, c === manifest.chunkHashes.length - 1, sealed))
    }
    const file = pieces.length === 1 ? pieces[0] as Buffer : Buffer.concat(pieces)
    if (file.byteLength !== instance.size || sha256Hex(file) !== instance.sha256) throw new Error(`instance ${instance.sopUid} does not match the manifest's size and SHA-256`)
    await this.o.archive.store(file, { type: 'peer', id: peer })
    // The received frames and the decrypted file are garbage now (heap.ts); the store counted its own.
    offHeapGarbage(2 * file.byteLength)
    for (let c = instance.firstChunk; c < instance.firstChunk + instance.chunkCount; c++) this.verified.delete(c)
    if (instance.chunkCount > 1) {
      await this.o.versions.forgetPartial(manifest.studyUid, manifest.versionId, Array.from({ length: instance.chunkCount }, (_, c) => instance.firstChunk + c))
    }
    this.markInstanceDone(instanceIndex, instance)
    if (this.complete()) this.wake()
  }
}

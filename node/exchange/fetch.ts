/**
 * Fetching one study: find its manifest and a key wrap for this node, then pull the chunks of every
 * instance not yet in the archive from every connected member that holds them, verify each against the
 * manifest, decrypt and store whole instances in the archive.
 *
 * - **Pull, bounded.** Per peer, CHUNKS_STREAMS_PER_PEER chunks streams (lane.ts) sharing WINDOW_BYTES of
 *   bytes asked for and not yet received, so memory and the bytes a dropped link wastes stay bounded. A
 *   chunk's frames received before a link drops are kept; the chunk is asked for again from the offset
 *   reached, from whichever holder is free.
 * - **Order for reading.** Chunks are asked for in manifest order, which is reading order (every series'
 *   first images first), so the first image is local after one chunk (schedule.ts).
 * - **Several holders at once.** Every connected holder is pulled from; each lane keeps about a second of
 *   its own measured rate asked for, so chunks spread across holders in proportion to their links, and a
 *   lane that runs dry at the tail asks for the slowest lane's last chunk as well (bounded, counted). Once
 *   every instance is in, the lanes still reading a duplicate are cut.
 * - **Verified, then durable.** A chunk whose SHA-256 is not the manifest's is dropped, its sender is
 *   penalised and not asked again in this fetch. An instance whose chunks are all verified is decrypted,
 *   checked against its plaintext SHA-256 and stored by the archive (synced, audited). Chunks of an instance
 *   that spans several chunks are kept by the archive as they arrive, so a restart resumes from them.
 * - **Links drop.** A peer whose stream fails is retried with backoff (1 s doubling to 30 s), or at once
 *   when it connects again (the redialer has waited out the link's own backoff); peers are asked again
 *   which chunks they hold; the fetch goes on until every instance is in or it is stopped.
 */
import type { ChunkForm } from '../../protocol/exchange/chunks.ts'
import type { Connection, Libp2p } from '@libp2p/interface'
import type { Logger } from 'pino'
import type { KeyWrap, StudyManifest } from '../../protocol/exchange/manifest.ts'
import { CHUNKS_STREAMS_PER_PEER, MANIFEST_PROTOCOL, WINDOW_BYTES } from '../../protocol/exchange/messages.ts'
import type { Archive } from '../archive/archive.ts'
import type { AuditActor, AuditLog } from '../audit/log.ts'
import type { MembershipRegistry } from '../membership/registry.ts'
import type { PeerPenalties } from '../p2p/penalties.ts'
import type { Availability, FetchState } from './availability.ts'
import { InstanceAssembly } from './assemble.ts'
import { pullLane } from './lane.ts'
import { PackChoice } from './pack-choice.ts'
import { askManifest, refusedManifestAnswer } from './manifest-ask.ts'
import { ChunkSchedule } from './schedule.ts'
import { type CheckedChunk, checkChunk, type VersionCheck } from './verify.ts'
import type { OpenVersion, StudyVersions } from './versions.ts'

const BACKOFF_MIN_MS = 1_000
const BACKOFF_MAX_MS = 30_000

export interface StudyFetchComponents {
  libp2p: Pick<Libp2p, 'peerId' | 'getConnections' | 'dialProtocol' | 'addEventListener' | 'removeEventListener'>
  registry: Pick<MembershipRegistry, 'isMember'>
  penalties: Pick<PeerPenalties, 'refuse' | 'isBanned'>
  archive: Pick<Archive, 'instancesOf' | 'store' | 'keepChunk' | 'hasChunk' | 'readChunk'>
  versions: Pick<StudyVersions, 'openLatest' | 'partialChunks' | 'keepPartial' | 'forgetPartial'>
  check: Pick<VersionCheck, 'versionRefusal' | 'openWithWrap'>
  audit: Pick<AuditLog, 'append'>
  log: Logger
}

export interface StudyFetchInit {
  studyUid: string
  actor: AuditActor
  /** the member whose versions of the study are taken (a case's site): another member's are not, however new */
  origin?: string | undefined
  /** the chunks protocols to propose, newest first (lane.ts CHUNKS_PROTOCOLS unless told) */
  chunkProtocols?: string[] | undefined
  /** whether to ask for chunks packed: as the fetch's pace says (pack-choice.ts) unless told */
  packing?: PackChoice | undefined
}

/** The version being fetched, with what is known of it so far. */
interface Fetching {
  version: OpenVersion
  schedule: ChunkSchedule
  assembly: InstanceAssembly
}

export class StudyFetch {
  private readonly components: StudyFetchComponents
  private readonly init: StudyFetchInit
  private readonly log: Logger
  private readonly abort = new AbortController()
  /** ends every lane once the study is complete (a tail duplicate still coming is not waited for) */
  private readonly pulls = new AbortController()
  private wastedBytes = 0
  private readonly packing: PackChoice
  private state: FetchState = 'idle'
  private error: string | undefined
  private fetching: Fetching | undefined
  private readonly workers = new Map<string, Promise<void>>()
  private readonly excluded = new Set<string>()
  private readonly retryAt = new Map<string, { at: number; delay: number }>()
  private readonly sources: Record<string, number> = {}
  private run: Promise<void> = Promise.resolve()
  private wake: () => void = () => {}
  finished = false
  /**
   * A holder no longer serves this fetch's version and offered a newer one of the same origin, opened with
   * this node's wrap and kept: the fetch ends, and the exchange fetches the newer (what is here is not moved
   * again; only chunks of an instance part way through are).
   */
  superseded = false

  constructor(components: StudyFetchComponents, init: StudyFetchInit) {
    this.components = components
    this.init = init
    this.log = components.log.child({ study: init.studyUid })
    this.packing = init.packing ?? new PackChoice()
  }

  start(): void {
    this.run = this.main()
      .catch((error: unknown) => {
        // A fetch stopped (the node stopping, the study withdrawn) has not failed: stop() said so already.
        if (!this.abort.signal.aborted) this.fail((error as Error).message)
      })
      .finally(() => {
        this.finished = true
      })
  }

  stop(): void {
    if (!this.finished) this.state = 'stopped'
    this.abort.abort()
  }

  /** The version this fetch took (once found), and who asked for it with which origin: to follow a newer one. */
  get manifest(): StudyManifest | undefined {
    return this.fetching?.version.manifest
  }

  get request(): Pick<StudyFetchInit, 'actor' | 'origin'> {
    return { actor: this.init.actor, origin: this.init.origin }
  }

  async settled(): Promise<void> {
    await this.run
    await Promise.allSettled([...this.workers.values(), this.fetching?.assembly.settled()])
  }

  async availability(): Promise<Availability> {
    const fetching = this.fetching
    const base =
      fetching === undefined
        ? { instancesTotal: 0, instancesLocal: 0, bytesTotal: 0, bytesLocal: 0, complete: false }
        : {
            instancesTotal: fetching.version.manifest.instanceCount,
            instancesLocal: fetching.assembly.instancesLocal,
            bytesTotal: fetching.version.manifest.bytes,
            bytesLocal: fetching.assembly.bytesLocal,
            complete: fetching.assembly.complete()
          }
    const error = this.error === undefined ? {} : { error: this.error }
    return { ...base, state: this.state, ...error, sources: { ...this.sources } }
  }

  private fail(error: string): void {
    this.state = 'failed'
    this.error = error
    this.log.warn({ event: 'fetch-failed', error }, `fetch of study ${this.init.studyUid} failed: ${error}`)
  }

  /** Connected members this fetch may ask: not this node, and not banned. */
  private members(): string[] {
    const { libp2p, registry, penalties } = this.components
    const self = libp2p.peerId.toString()
    const peers = new Set(
      libp2p
        .getConnections()
        .filter(c => c.status === 'open')
        .map(c => c.remotePeer.toString())
    )
    return [...peers].filter(peer => peer !== self && registry.isMember(peer) && !penalties.isBanned(peer))
  }

  private async main(): Promise<void> {
    // A member that (re)connects is asked at once: the redialer has already waited out the link's backoff.
    const onConnection = (event: CustomEvent<Connection>): void => {
      this.retryAt.delete(event.detail.remotePeer.toString())
      this.wake()
    }
    this.components.libp2p.addEventListener('connection:open', onConnection)
    try {
      await this.fetchAll()
    } finally {
      this.components.libp2p.removeEventListener('connection:open', onConnection)
    }
  }

  /** Waits `ms`, or less when a member connects, a puller ends or the fetch stops. */
  private async pause(ms: number): Promise<void> {
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

  private async fetchAll(): Promise<void> {
    const { archive, versions, audit } = this.components
    const started = performance.now()
    this.state = 'finding'
    const version = await this.findVersion()
    const { manifest } = version
    const schedule = new ChunkSchedule(manifest.chunkHashes.length, { sizes: manifest.chunkSizes })
    const assembly = new InstanceAssembly(
      { archive, versions, log: this.log },
      {
        version,
        schedule,
        failed: error => {
          this.state = 'failed'
          this.error = error
          this.abort.abort()
        },
        done: () => {
          this.wake()
        }
      }
    )
    this.fetching = { version, schedule, assembly }
    await assembly.resume()
    const resumed = assembly.instancesLocal
    this.state = 'fetching'
    const startedWith = { version: manifest.versionId, instances: manifest.instanceCount, local: resumed }
    const toGet = `${manifest.instanceCount - resumed} of ${manifest.instanceCount} instances to get`
    this.log.info({ event: 'fetch-started', ...startedWith }, `fetching study ${manifest.studyUid}: ${toGet}`)
    assembly.storeResumed()
    await this.pullUntilComplete(assembly)
    this.pulls.abort(new Error('the study is complete'))
    await Promise.allSettled([...this.workers.values()])
    await assembly.settled()
    if (this.abort.signal.aborted && !assembly.complete()) return
    if (this.superseded && !assembly.complete()) {
      this.state = 'stopped'
      const left = { version: manifest.versionId, local: assembly.instancesLocal, instances: manifest.instanceCount }
      this.log.info(
        { event: 'fetch-superseded', ...left },
        `a newer version of study ${manifest.studyUid} replaces this one`
      )
      return
    }
    if (!assembly.complete()) throw new Error('the fetch ended before every instance was stored')
    this.state = 'complete'
    const seconds = (performance.now() - started) / 1000
    const { versionId, instanceCount, bytes } = manifest
    const tail = { ...schedule.tail, wastedBytes: this.wastedBytes }
    // Instances this fetch moved (the rest were here already: a study that grew is fetched version by version).
    const fetched = assembly.instancesLocal - resumed
    const complete = {
      version: versionId,
      instances: instanceCount,
      fetched,
      bytes,
      seconds,
      sources: this.sources,
      tail
    }
    const took = `${instanceCount} instances in ${seconds.toFixed(1)} s`
    this.log.info({ event: 'fetch-complete', ...complete }, `study ${manifest.studyUid} complete: ${took}`)
    const from = Object.keys(this.sources).join(', ') || 'the local archive'
    const detail = `fetched ${manifest.instanceCount} instances from ${from}`
    const { actor } = this.init
    const study = manifest.studyUid
    await audit.append({ event: 'instancesTransferred', action: 'C', outcome: 0, actor, study, detail })
  }

  /** Starts a puller for every connected holder, again whenever one ends or a member connects, until done. */
  private async pullUntilComplete(assembly: InstanceAssembly): Promise<void> {
    while (!assembly.complete() && !this.abort.signal.aborted && !this.superseded) {
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

  /** The newest version this node can read: its own, or one found by asking connected members. */
  private async findVersion(): Promise<OpenVersion> {
    const { versions, check, penalties, libp2p } = this.components
    const { studyUid, origin } = this.init
    let backoff = BACKOFF_MIN_MS
    while (!this.abort.signal.aborted) {
      const latest = await versions.openLatest(studyUid)
      const ours = latest !== undefined && (origin === undefined || latest.manifest.origin === origin)
      const local = ours ? latest : undefined
      const found: Array<{ manifest: StudyManifest; wraps: KeyWrap[]; peer: string }> = []
      for (const peer of this.members()) {
        const answer = await askManifest(libp2p, peer, studyUid, this.abort.signal).catch((error: unknown) => {
          refusedManifestAnswer(penalties, this.log, peer, error)
        })
        if (answer?.status !== 'ok') continue
        const foreign = `study ${studyUid} comes from ${origin}, not ${answer.manifest.origin}`
        const refusal =
          origin !== undefined && answer.manifest.origin !== origin
            ? { code: 'foreign-version' as const, error: foreign }
            : await check.versionRefusal(answer.manifest)
        if (refusal === undefined) {
          found.push({ manifest: answer.manifest, wraps: answer.wraps, peer })
          continue
        }
        // A holder passes on the versions it has: one of a study this node follows from another origin may be honest.
        penalties.refuse(this.log, {
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
          const opened = await check.openWithWrap(manifest, wrap, { peer, protocol: MANIFEST_PROTOCOL })
          if (opened !== undefined) return opened
        }
      }
      if (local !== undefined) return local
      if (found.length > 0) {
        const ask = `ask the site to share the study with ${libp2p.peerId.toString()}`
        throw new Error(`this node is not a recipient of study ${studyUid}: no member holds a key wrap for it; ${ask}`)
      }
      const again = `asking again in ${backoff / 1000} s, or when a member connects`
      const waiting = `no connected member knows study ${studyUid} yet; ${again}`
      this.log.info({ event: 'fetch-waiting', backoffMs: backoff }, waiting)
      await this.pause(backoff)
      backoff = Math.min(BACKOFF_MAX_MS, backoff * 2)
    }
    throw new Error('stopped')
  }

  /**
   * Whether a holder's version, other than the one fetched, supersedes it: of the same origin, later, acceptable,
   * and opened with a wrap for this node (then kept, so it is the study's latest here).
   */
  private async takeNewer(manifest: StudyManifest, wraps: KeyWrap[], peer: string): Promise<boolean> {
    const { check } = this.components
    const current = (this.fetching as Fetching).version.manifest
    if (manifest.origin !== current.origin || Date.parse(manifest.createdAt) <= Date.parse(current.createdAt))
      return false
    if ((await check.versionRefusal(manifest)) !== undefined) return false
    for (const wrap of wraps) {
      if ((await check.openWithWrap(manifest, wrap, { peer, protocol: MANIFEST_PROTOCOL })) !== undefined) return true
    }
    return false
  }

  /** A peer that has nothing for this fetch now (another version, or no chunk it needs) is asked again later. */
  private askLater(peer: string): void {
    this.retryAt.set(peer, { at: Date.now() + BACKOFF_MIN_MS, delay: BACKOFF_MIN_MS })
  }

  /** Pulls from one peer over CHUNKS_STREAMS_PER_PEER streams until it has nothing more this fetch needs. */
  private async pullFrom(peer: string): Promise<void> {
    const { version, schedule, assembly } = this.fetching as Fetching
    const { libp2p, penalties, log } = this.components
    const lanes = new AbortController()
    const signal = AbortSignal.any([this.abort.signal, this.pulls.signal, lanes.signal])
    const progress = { made: false }
    try {
      const { studyUid } = this.init
      const answer = await askManifest(libp2p, peer, studyUid, this.abort.signal, version.manifest)
      const another = answer.status === 'ok' && answer.manifest.versionId !== version.manifest.versionId
      if (answer.status === 'ok' && another && (await this.takeNewer(answer.manifest, answer.wraps, peer))) {
        this.superseded = true
        this.pulls.abort(new Error('a newer version of the study replaces this one'))
        return
      }
      if (answer.status === 'unknown-study' || another) {
        this.askLater(peer)
        return
      }
      const lane = {
        peer,
        manifest: version.manifest,
        have: answer.have,
        schedule,
        window: WINDOW_BYTES / CHUNKS_STREAMS_PER_PEER,
        signal,
        check: async (index: number, form: ChunkForm, bytes: Buffer) => await checkChunk(version, index, form, bytes),
        accept: async (index: number, chunk: CheckedChunk) => {
          this.packing.moved(version.manifest.chunkSizes[index] as number)
          await assembly.accept(index, chunk, peer)
        },
        ...(this.init.chunkProtocols === undefined ? {} : { protocols: this.init.chunkProtocols }),
        packing: this.packing,
        received: (bytes: number) => {
          this.sources[peer] = (this.sources[peer] ?? 0) + bytes
        },
        wasted: (bytes: number) => {
          this.wastedBytes += bytes
        },
        exclude: () => {
          this.excluded.add(peer)
        },
        progress
      }
      // Every lane has ended (and given back its chunks) before this puller does: one failing stops the others.
      const results = await Promise.allSettled(
        Array.from({ length: CHUNKS_STREAMS_PER_PEER }, async () => {
          try {
            await pullLane({ libp2p, penalties, log }, lane)
          } catch (error) {
            lanes.abort(error)
            throw error
          }
        })
      )
      const failed = results.find(result => result.status === 'rejected')
      if (failed !== undefined) throw failed.reason
      // A holder that had nothing this fetch needs is asked again later, not at once and forever.
      if (progress.made) this.retryAt.delete(peer)
      else this.askLater(peer)
    } catch (error) {
      if (this.abort.signal.aborted || this.pulls.signal.aborted || this.excluded.has(peer)) return
      const previous = this.retryAt.get(peer)?.delay ?? 0
      const delay = progress.made ? BACKOFF_MIN_MS : Math.min(BACKOFF_MAX_MS, Math.max(BACKOFF_MIN_MS, previous * 2))
      const jittered = Math.round(delay * (0.8 + Math.random() * 0.4))
      this.retryAt.set(peer, { at: Date.now() + jittered, delay })
      const message = (error as Error).message
      const again = `trying again in ${(jittered / 1000).toFixed(1)} s`
      const lost = `lost the link to ${peer} while fetching (${message}); ${again}`
      this.log.info({ event: 'fetch-link-lost', peer, error: message, retryInMs: jittered }, lost)
    }
  }
}

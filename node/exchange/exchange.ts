/**
 * The study exchange, put together: sharing (share.ts), serving (serve.ts, holdings.ts), fetching
 * (fetch.ts, lane.ts, assemble.ts) and the checks of what peers send (verify.ts), over the protocols and
 * limits of protocol/exchange. This class registers the handlers with those limits, keeps one fetch per
 * study (resumed when the node starts) and says how much of a study is here.
 */
import type { Libp2p } from '@libp2p/interface'
import type { Logger } from 'pino'
import {
  ANNOUNCE_MAX_INBOUND_STREAMS,
  ANNOUNCE_MAX_OUTBOUND_STREAMS,
  ANNOUNCE_PROTOCOL,
  CHUNKS_MAX_INBOUND_STREAMS,
  CHUNKS_MAX_OUTBOUND_STREAMS,
  CHUNKS_PROTOCOL,
  EXCHANGE_TIMEOUT_MS,
  MANIFEST_MAX_INBOUND_STREAMS,
  MANIFEST_MAX_OUTBOUND_STREAMS,
  MANIFEST_PROTOCOL
} from '../../protocol/exchange/messages.ts'
import { CHUNKS_PROTOCOL_2 } from '../../protocol/exchange/chunks.ts'
import type { Archive } from '../archive/index.ts'
import type { AuditActor, AuditLog } from '../audit/log.ts'
import type { Identity } from '../identity/keys.ts'
import type { MembershipRegistry } from '../membership/registry.ts'
import type { PeerPenalties } from '../p2p/penalties.ts'
import { type Availability, availabilityOf } from './availability.ts'
import { StudyFetch } from './fetch.ts'
import { Holdings } from './holdings.ts'
import { ExchangeServer } from './serve.ts'
import { type ShareResult, StudySharing } from './share.ts'
import { VersionCheck } from './verify.ts'
import type { StudyVersions } from './versions.ts'

export interface ExchangeComponents {
  libp2p: Libp2p
  identity: Identity
  consortiumId: string
  registry: MembershipRegistry
  penalties: PeerPenalties
  archive: Archive
  versions: StudyVersions
  audit: AuditLog
  log: Logger
}

export interface ExchangeInit {
  /** how long a request, an answer or one chunk frame may take (EXCHANGE_TIMEOUT_MS unless given: tests shorten it) */
  timeoutMs?: number
  /** speak only `/radmesh/chunks/1.0.0`, as a member on an older radmesh does (tests of interoperation) */
  chunksVersion1Only?: boolean
  /**
   * pack chunks for peers on `/radmesh/chunks/2.0.0`: true unless told, or unless the environment has
   * RADMESH_CHUNK_PACKING=0 (for benchmarks that compare)
   */
  pack?: boolean
}

export class Exchange {
  readonly versions: StudyVersions
  private readonly components: ExchangeComponents
  private readonly log: Logger
  private readonly check: VersionCheck
  private readonly sharing: StudySharing
  private readonly server: ExchangeServer
  private readonly fetches = new Map<string, StudyFetch>()
  private readonly chunksProtocols: string[]
  private stopped = false

  constructor(components: ExchangeComponents, init: ExchangeInit = {}) {
    const { libp2p, identity, consortiumId, registry, penalties, archive, versions, audit, log } = components
    const timeoutMs = init.timeoutMs ?? EXCHANGE_TIMEOUT_MS
    this.components = components
    this.versions = versions
    this.log = log
    // Each part is given the components it uses, and nothing more.
    const check = new VersionCheck({ identity, consortiumId, registry, penalties, versions, log })
    this.check = check
    this.sharing = new StudySharing(
      { libp2p, identity, consortiumId, registry, archive, versions, check, penalties, audit, log },
      {
        timeoutMs,
        announced: manifest => {
          this.followNewer(manifest.studyUid)
        }
      }
    )
    const holdings = new Holdings({ archive, versions })
    const pack = init.pack ?? process.env['RADMESH_CHUNK_PACKING'] !== '0'
    this.server = new ExchangeServer({ versions, holdings, audit, penalties, log }, { timeoutMs, pack })
    this.chunksProtocols = init.chunksVersion1Only === true ? [CHUNKS_PROTOCOL] : [CHUNKS_PROTOCOL_2, CHUNKS_PROTOCOL]
  }

  async start(): Promise<void> {
    const { libp2p } = this.components
    await libp2p.handle(MANIFEST_PROTOCOL, this.server.handleManifest, {
      maxInboundStreams: MANIFEST_MAX_INBOUND_STREAMS,
      maxOutboundStreams: MANIFEST_MAX_OUTBOUND_STREAMS
    })
    // Both chunks protocols: a member on an older radmesh asks for 1.0.0 and is served sealed chunks.
    for (const protocol of this.chunksProtocols) {
      const handler = protocol === CHUNKS_PROTOCOL_2 ? this.server.handleChunks2 : this.server.handleChunks
      await libp2p.handle(protocol, handler, {
        maxInboundStreams: CHUNKS_MAX_INBOUND_STREAMS,
        maxOutboundStreams: CHUNKS_MAX_OUTBOUND_STREAMS
      })
    }
    await libp2p.handle(ANNOUNCE_PROTOCOL, this.sharing.handleAnnounce, {
      maxInboundStreams: ANNOUNCE_MAX_INBOUND_STREAMS,
      maxOutboundStreams: ANNOUNCE_MAX_OUTBOUND_STREAMS
    })
    for (const [studyUid, actor] of await this.versions.unfinishedFetches()) {
      this.log.info({ event: 'fetch-resumed', study: studyUid }, `resuming the fetch of study ${studyUid}`)
      this.fetch(studyUid, actor as AuditActor)
    }
  }

  async stop(): Promise<void> {
    this.stopped = true
    this.server.stop()
    for (const fetch of this.fetches.values()) fetch.stop()
    await Promise.all(
      [...this.fetches.values()].map(async fetch => {
        await fetch.settled()
      })
    )
    for (const protocol of [MANIFEST_PROTOCOL, ...this.chunksProtocols, ANNOUNCE_PROTOCOL]) {
      await this.components.libp2p.unhandle(protocol)
    }
  }

  /**
   * Makes a study readable by members: publishes a version (the origin, when it has none or the archive
   * has changed), wraps its key for each, and announces it to them.
   */
  async share(studyUid: string, peerIds: string[], actor: AuditActor): Promise<ShareResult> {
    return await this.sharing.share(studyUid, peerIds, actor)
  }

  /** Starts fetching a study (or returns the fetch already running). */
  fetch(studyUid: string, actor: AuditActor, options: { origin?: string } = {}): StudyFetch {
    const running = this.fetches.get(studyUid)
    if (running !== undefined && !running.finished) return running
    const { libp2p, registry, penalties, archive, audit, log } = this.components
    const fetch = new StudyFetch(
      { libp2p, registry, penalties, archive, versions: this.versions, check: this.check, audit, log },
      { studyUid, actor, origin: options.origin, chunkProtocols: this.chunksProtocols }
    )
    this.fetches.set(studyUid, fetch)
    fetch.start()
    const marked = this.versions.markFetching(studyUid, actor).catch((error: unknown) => {
      this.log.error({ err: error, study: studyUid }, 'could not record the fetch; it will not resume after a restart')
    })
    void fetch
      .settled()
      .then(async () => {
        await marked
        const { state } = await fetch.availability()
        if (state === 'complete' || state === 'failed') await this.versions.fetchDone(studyUid)
        if (state === 'complete' || fetch.superseded) this.followNewer(studyUid)
      })
      .catch(() => {})
    return fetch
  }

  /**
   * A study this node fetched has a newer version (announced while or after it fetched): it is fetched too, and
   * only the instances not yet here move (a study growing during its acquisition, streamed to a STAT reader).
   * A fetch still running goes on with its version; this is asked again when it completes.
   */
  private followNewer(studyUid: string): void {
    const last = this.fetches.get(studyUid)
    const fetched = last?.manifest
    if (this.stopped || last === undefined || !last.finished || fetched === undefined) return
    void (async () => {
      const latest = (await this.versions.manifest(studyUid)) ?? fetched
      const { origin, actor } = last.request
      const newer = Date.parse(latest.createdAt) > Date.parse(fetched.createdAt)
      const done = last.superseded || (await last.availability()).state === 'complete'
      if (!newer || (origin !== undefined && latest.origin !== origin) || !done) return
      if (this.fetches.get(studyUid) !== last || this.stopped) return
      const detail = { study: studyUid, version: latest.versionId, instances: latest.instanceCount }
      this.log.info({ event: 'fetch-newer-version', ...detail }, `study ${studyUid} grew; fetching what is new`)
      this.fetch(studyUid, actor, { origin })
    })().catch((error: unknown) => {
      this.log.warn({ err: error, study: studyUid }, 'could not follow a newer version of a fetched study')
    })
  }

  /** How much of a study is here: its fetch's progress, or what the archive holds of its latest version. */
  async availability(studyUid: string): Promise<Availability | undefined> {
    const { archive } = this.components
    const running = this.fetches.get(studyUid)
    if (running !== undefined) return await running.availability()
    const version = await this.versions.openLatest(studyUid)
    if (version !== undefined) return await availabilityOf(version, archive, 'idle')
    const study = await archive.study(studyUid)
    if (study === undefined) return undefined
    const { instanceCount, bytes } = study
    return {
      instancesTotal: instanceCount,
      instancesLocal: instanceCount,
      bytesTotal: bytes,
      bytesLocal: bytes,
      complete: true,
      state: 'complete'
    }
  }
}

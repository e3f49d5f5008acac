/**
 * Sharing a study: making it readable by members and telling them (`/radmesh/announce/1.0.0`), and taking
 * the announcements of studies shared with this node.
 *
 * Who may read: only a member that holds a key wrap made for its certified X25519 key. The origin wraps
 * for the readers it shares with; a recipient can wrap for a consultant. Wraps are made only for members
 * whose certificate is valid and not revoked. An announcement is only news: a recipient that missed it
 * finds the version when it fetches.
 */
import type { Connection, Libp2p, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import type { Logger } from 'pino'
import type { KeyWrap, StudyManifest } from '../../protocol/exchange/manifest.ts'
import {
  ANNOUNCE_PROTOCOL,
  type AnnouncementAnswer,
  decodeAnnouncement,
  decodeAnnouncementAnswer,
  encodeAnnouncement,
  encodeAnnouncementAnswer,
  EXCHANGE_TIMEOUT_MS,
  MAX_ANNOUNCE_ANSWER_BYTES,
  MAX_MANIFEST_MESSAGE_BYTES
} from '../../protocol/exchange/messages.ts'
import type { PeerIdString } from '../../protocol/ids.ts'
import type { Archive } from '../archive/archive.ts'
import type { AuditActor, AuditLog } from '../audit/log.ts'
import { ExchangeError } from '../errors.ts'
import type { Identity } from '../identity/keys.ts'
import type { MembershipRegistry } from '../membership/registry.ts'
import type { PeerPenalties } from '../p2p/penalties.ts'
import { messageStream } from '../p2p/wire.ts'
import { signKeyWrap, wrapContentKey } from './crypto.ts'
import { readOne, refuseStream } from './streams.ts'
import type { VersionCheck } from './verify.ts'
import type { OpenVersion, StudyVersions } from './versions.ts'

export interface ShareResult {
  studyUid: string
  versionId: string
  recipients: Array<{ peerId: string; announced: boolean }>
}

export interface StudySharingComponents {
  libp2p: Pick<Libp2p, 'dialProtocol'>
  identity: Pick<Identity, 'peerId' | 'privateKey'>
  consortiumId: string
  registry: Pick<MembershipRegistry, 'isRevoked' | 'isMember' | 'certificateOf'>
  archive: Pick<Archive, 'study' | 'instancesOf' | 'seriesOf' | 'read'>
  versions: Pick<StudyVersions, 'openLatest' | 'publish' | 'wrapFor' | 'addWraps'>
  check: Pick<VersionCheck, 'versionRefusal' | 'openWithWrap'>
  penalties: Pick<PeerPenalties, 'refuse'>
  audit: Pick<AuditLog, 'append'>
  log: Logger
}

export interface StudySharingInit {
  /** how long an announcement and its answer may take (EXCHANGE_TIMEOUT_MS; tests shorten it) */
  timeoutMs: number
  /** a version announced to this node was taken (opened with its wrap, kept) */
  announced?: (manifest: StudyManifest) => void
}

export class StudySharing {
  private readonly components: StudySharingComponents
  private readonly timeoutMs: number
  private readonly announced: (manifest: StudyManifest) => void

  constructor(components: StudySharingComponents, init: StudySharingInit) {
    this.components = components
    this.timeoutMs = init.timeoutMs
    this.announced = init.announced ?? (() => {})
  }

  /**
   * Makes a study readable by members: publishes a version (the origin, when it has none or the archive
   * has changed), wraps its key for each, and announces it to them.
   */
  async share(studyUid: string, peerIds: string[], actor: AuditActor): Promise<ShareResult> {
    const { registry, archive, identity, versions, audit, log } = this.components
    for (const peerId of peerIds) {
      if (registry.isRevoked(peerId)) {
        const revoked = `${peerId} is revoked; a study key is never wrapped for a revoked member`
        throw new ExchangeError('RADMESH_REVOKED', revoked)
      }
      if (registry.certificateOf(peerId) === undefined || !registry.isMember(peerId)) {
        const unknown = `${peerId} is not a member this node knows with a valid certificate`
        const connect = 'it must connect once before a study can be shared with it'
        throw new ExchangeError('RADMESH_NOT_A_MEMBER', `${unknown}; ${connect}`)
      }
    }
    let version = await versions.openLatest(studyUid)
    const study = await archive.study(studyUid)
    const mine = version?.manifest.origin === identity.peerId
    const stale =
      version !== undefined && mine && study !== undefined && study.instanceCount !== version.manifest.instanceCount
    // Another origin's version is passed on (a reader inviting a consultant) only if it is the study held here:
    // one that a member made of this node's study UID before this node shared it must not stand for it.
    const foreign = version !== undefined && !mine && study !== undefined && !(await this.holdsOnly(version, studyUid))
    if (foreign) {
      log.warn(
        { event: 'foreign-version-replaced', study: studyUid, origin: version?.manifest.origin },
        `the version of study ${studyUid} known here is not the study in this archive; publishing this node's own`
      )
    }
    if (version === undefined || stale || foreign) {
      // A stale version implies the study is in the archive: here there is no version at all.
      if (study === undefined) {
        const missing =
          `study ${studyUid} is not in this node's archive, ` + 'and no version of it was shared with this node'
        throw new ExchangeError('RADMESH_NOT_FOUND', missing)
      }
      version = await this.publish(studyUid)
    }
    const wraps = await this.wrapsFor(version, peerIds)
    await versions.addWraps(wraps)
    const recipients = await Promise.all(
      wraps.map(async wrap => ({
        peerId: wrap.recipient as string,
        announced: await this.announce(version.manifest, wrap)
      }))
    )
    const detail = `shared with ${peerIds.join(', ')}`
    await audit.append({ event: 'instancesTransferred', action: 'U', outcome: 0, actor, study: studyUid, detail })
    return { studyUid, versionId: version.manifest.versionId, recipients }
  }

  private async publish(studyUid: string): Promise<OpenVersion> {
    const { archive, identity, versions, consortiumId, log } = this.components
    const started = performance.now()
    const origin = { peerId: identity.peerId, privateKey: identity.privateKey, consortiumId }
    const version = await versions.publish(archive, studyUid, origin)
    const { manifest } = version
    log.info(
      {
        event: 'study-published',
        study: studyUid,
        version: manifest.versionId,
        instances: manifest.instanceCount,
        chunks: manifest.chunkHashes.length,
        ms: Math.round(performance.now() - started)
      },
      'study version published'
    )
    return version
  }

  /** A key wrap for each member: the one made before, or a new one for its certified key. */
  private async wrapsFor(version: OpenVersion, peerIds: string[]): Promise<KeyWrap[]> {
    const { registry, identity, versions } = this.components
    const { studyUid, versionId } = version.manifest
    const wraps: KeyWrap[] = []
    for (const peerId of peerIds) {
      const existing = await versions.wrapFor(studyUid, versionId, peerId)
      if (existing !== undefined) {
        wraps.push(existing)
        continue
      }
      const certificate = registry.certificateOf(peerId)
      if (certificate === undefined) continue
      const { ephemeralKey, wrappedKey } = wrapContentKey(version.key, certificate.wrapKey, studyUid, versionId)
      const recipient = peerId as PeerIdString
      const createdAt = new Date().toISOString()
      const wrappedBy = identity.peerId
      const wrap = { v: 1, studyUid, versionId, recipient, ephemeralKey, wrappedKey, wrappedBy, createdAt }
      wraps.push(await signKeyWrap(identity.privateKey, wrap))
    }
    return wraps
  }

  /** Whether every instance of the study in the archive is one of the version's, with the same SHA-256. */
  private async holdsOnly(version: OpenVersion, studyUid: string): Promise<boolean> {
    const listed = new Map(version.index.instances.map(instance => [instance.sopUid, instance.sha256]))
    for await (const instance of this.components.archive.instancesOf(studyUid)) {
      if (listed.get(instance.sopUid) !== instance.sha256) return false
    }
    return true
  }

  private async announce(manifest: StudyManifest, wrap: KeyWrap): Promise<boolean> {
    const { libp2p, log } = this.components
    const signal = AbortSignal.timeout(EXCHANGE_TIMEOUT_MS)
    try {
      const stream = await libp2p.dialProtocol(peerIdFromString(wrap.recipient), ANNOUNCE_PROTOCOL, { signal })
      const lp = lpStream(stream, { maxDataLength: MAX_ANNOUNCE_ANSWER_BYTES })
      await lp.write(encodeAnnouncement({ manifest, wraps: [wrap] }), { signal })
      const answer = decodeAnnouncementAnswer((await lp.read({ signal })).subarray())
      await stream.close({ signal })
      if (answer.status !== 'ok') {
        const { recipient } = wrap
        const refused = `${recipient} refused the announcement: ${answer.reason}`
        log.warn({ event: 'announce-refused', peer: recipient, reason: answer.reason }, refused)
      }
      return answer.status === 'ok'
    } catch (error) {
      const detail = { peer: wrap.recipient, study: manifest.studyUid, error: (error as Error).message }
      const later = 'could not announce the study now; the recipient can still fetch it'
      log.info({ event: 'announce-failed', ...detail }, later)
      return false
    }
  }

  /** A study shared with this node: kept once its manifest checks and a wrap for this node opens. */
  readonly handleAnnounce = async (stream: Stream, connection: Connection): Promise<void> => {
    const { check, penalties, log } = this.components
    const peer = connection.remotePeer.toString()
    const protocol = ANNOUNCE_PROTOCOL
    const signal = AbortSignal.timeout(this.timeoutMs)
    try {
      const lp = messageStream(stream, { maxDataLength: MAX_MANIFEST_MESSAGE_BYTES, messageTimeoutMs: this.timeoutMs })
      const { manifest, wraps } = decodeAnnouncement(await readOne(lp, signal, 'announcement'))
      let answer: AnnouncementAnswer = { status: 'refused', reason: 'no key wrap for this member opens the study' }
      const refusal = await check.versionRefusal(manifest)
      if (refusal !== undefined) {
        answer = { status: 'refused', reason: refusal.error }
        const detail = { study: manifest.studyUid }
        const { code, error } = refusal
        penalties.refuse(log, { peer, protocol, code, event: 'announce-refused', error, detail })
      } else {
        for (const wrap of wraps) {
          if ((await check.openWithWrap(manifest, wrap, { peer, protocol })) !== undefined) {
            answer = { status: 'ok' }
            break
          }
        }
      }
      if (answer.status === 'ok') {
        const { studyUid: study, origin, instanceCount: instances } = manifest
        const detail = { study, origin, from: peer, instances }
        log.info({ event: 'study-announced', ...detail }, 'a study was shared with this node')
        this.announced(manifest)
      }
      await lp.write(encodeAnnouncementAnswer(answer), signal)
      await stream.close({ signal })
    } catch (error) {
      refuseStream(this.components, stream, { peer, protocol }, error)
    }
  }
}

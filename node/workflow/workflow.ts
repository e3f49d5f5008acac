/**
 * The reading workflow, modelled on DICOM UPS / IHE RRR-WF: a stable study at a site becomes a case
 * (worklist/routing.ts) published to the eligible readers, whose nodes are given the study key at once (the
 * exchange); STAT cases are prefetched by eligible readers on duty, so the images are local when claimed;
 * claiming fetches the study; a consult gives the consultant the key and the report. A de-identified copy the
 * site made (node/deid/share.ts) becomes a second-opinion case instead, for the members it was shared with and no
 * one else. Every case and report action is audited. What documents are shared with whom (the sync policy) is
 * decided here too.
 */
import { createHash } from 'node:crypto'
import type { Logger } from 'pino'
import type { Shift } from '../../protocol/collab/records.ts'
import type { WorklistRecord } from '../../protocol/collab/records.ts'
import { caseDocId, docKind, MEMBERS_DOC, reportDocId } from '../../protocol/collab/sync.ts'
import type { PeerIdString } from '../../protocol/ids.ts'
import type { MemberCertificate } from '../../protocol/membership/index.ts'
import type { Archive, StudyRecord } from '../archive/archive.ts'
import type { AuditActor, AuditLog } from '../audit/log.ts'
import type { DeidMapping, DeidMappings } from '../deid/mappings.ts'
import { CaseError } from '../errors.ts'
import type { Exchange } from '../exchange/exchange.ts'
import type { Identity } from '../identity/keys.ts'
import type { MembershipRegistry } from '../membership/registry.ts'
import type { Documents } from '../crdt/documents.ts'
import type { SyncPolicy } from '../crdt/sync-policy.ts'
import type { Reports } from '../reports/reports.ts'
import type { CaseState } from '../worklist/cases.ts'
import { dueAt, route, type RoutingConfig } from '../worklist/routing.ts'
import type { Worklist } from '../worklist/worklist.ts'
import { StatStreaming } from './streaming.ts'
import { routeStudy } from './study-route.ts'

export interface WorkflowOptions {
  documents: Documents
  identity: Identity
  registry: MembershipRegistry
  archive: Archive
  exchange: Exchange
  audit: AuditLog
  worklist: Worklist
  reports: Reports
  routing: RoutingConfig
  /** the site's sealed mappings of de-identified copies: a copy's case goes to its recipients only */
  copies?: Pick<DeidMappings, 'get'>
  /** a study this site retrieved from its PACS as a prior of a case (priors.ts): never a case of its own */
  isPrior?: (studyUid: string) => boolean
  log: Logger
}

/** A case's study fetch that failed is tried again this many times in all, this far apart. */
const FETCH_ATTEMPTS = 5
const FETCH_RETRY_MS = 15_000

/** A case id names one study at one site: the same on every node, whoever computes it. */
export const caseIdFor = (site: string, studyUid: string): string =>
  createHash('sha256').update(`${site}\n${studyUid}`).digest('hex').slice(0, 24)

const text = (study: StudyRecord, tag: string): string => {
  const value = study.attributes[tag]
  return typeof value === 'string' ? value : Array.isArray(value) ? value.map(String).join('\\') : ''
}

export class ReadingWorkflow {
  private readonly o: WorkflowOptions
  private readonly cleanups: Array<() => void> = []
  private readonly prefetched = new Set<string>()
  /** stable studies of this site that wait for a radiologist to be known before their case is published */
  private readonly waitingForReaders = new Set<string>()
  /** STAT studies of this site streamed to their readers during the acquisition (streaming.ts) */
  private streaming: StatStreaming | undefined
  private stopped = false

  constructor(options: WorkflowOptions) {
    this.o = options
  }

  get isSite(): boolean {
    return this.o.registry.self.role === 'site'
  }

  start(): void {
    const { archive, worklist, log } = this.o
    if (this.isSite) {
      const streaming = this.startStreaming()
      streaming.resume(this.o.identity.peerId)
      this.cleanups.push(
        archive.onStudyGrew(studyUid => {
          streaming.grew(studyUid)
        }),
        archive.onStudyStable(event => {
          void (async () => {
            if (!(await streaming.stable(event))) await this.caseForStudy(event.studyUid)
          })().catch((error: unknown) => {
            log.error({ err: error, study: event.studyUid }, 'could not publish a case for a stable study')
          })
        })
      )
    }
    this.cleanups.push(
      worklist.onChange(changed => {
        this.react(changed)
      })
    )
    this.react()
  }

  stop(): void {
    this.stopped = true
    for (const cleanup of this.cleanups.splice(0)) cleanup()
    this.streaming?.stop()
  }

  private startStreaming(): StatStreaming {
    const { archive, worklist, routing, identity, log } = this.o
    this.streaming = new StatStreaming({
      archive,
      worklist,
      routing,
      log,
      caseIdOf: studyUid => caseIdFor(identity.peerId, studyUid),
      notRouted: async studyUid =>
        this.o.isPrior?.(studyUid) === true || (await this.o.copies?.get(studyUid)) !== undefined,
      publish: async studyUid => await this.caseForStudy(studyUid, true),
      share: async studyUid => {
        const state = await worklist.ensureCase(caseIdFor(identity.peerId, studyUid))
        if (state !== undefined) await this.shareWith(studyUid, state.readers)
      }
    })
    return this.streaming
  }

  // Sites: cases from stable studies

  /** Radiologists known to this node (from the registry or the worklist), not revoked, not expired. */
  radiologists(now = Date.now()): MemberCertificate[] {
    const { registry, worklist } = this.o
    const byPeer = new Map<string, MemberCertificate>()
    for (const certificate of worklist.memberCertificates()) {
      const known = registry.certificateOf(certificate.peerId) ?? certificate
      if (known.role === 'radiologist' && !registry.isRevoked(known.peerId) && Date.parse(known.expiresAt) > now) {
        byPeer.set(known.peerId, known)
      }
    }
    return [...byPeer.values()]
  }

  /** Readers a case of this subspecialty goes to: those with it, or every radiologist when none has it. */
  eligibleReaders(subspecialty: string): string[] {
    const all = this.radiologists()
    const specialists = all.filter(c => c.subspecialties.includes(subspecialty))
    return (specialists.length > 0 ? specialists : all).map(c => c.peerId).sort()
  }

  /**
   * Publishes the case of a stable study (once: a study that grows later keeps its case) and shares the
   * study with the case's readers (again when it grew, so they get the new version). `acquiring`: the case of
   * a STAT study published at its first instance, streamed to its readers as it arrives (streaming.ts).
   */
  async caseForStudy(studyUid: string, acquiring = false): Promise<CaseState | undefined> {
    const { archive, worklist, routing, identity, log } = this.o
    const study = await archive.study(studyUid)
    if (study === undefined) return undefined
    const caseId = caseIdFor(identity.peerId, studyUid)
    let state = await worklist.ensureCase(caseId)
    if (state === undefined && this.o.isPrior?.(studyUid) === true) {
      log.info({ event: 'prior-not-a-case', study: studyUid }, 'a study retrieved as a prior is no case of its own')
      return undefined
    }
    const copy = await this.o.copies?.get(studyUid)
    if (state === undefined && copy !== undefined) return await this.secondOpinionCase(caseId, study, copy)
    if (state === undefined) {
      if (this.radiologists().length === 0) {
        // A case names its readers once and for all: it waits until the first radiologist is known.
        this.waitingForReaders.add(studyUid)
        log.warn(
          { event: 'case-waiting-for-readers', study: studyUid },
          'no radiologist is known yet; the case is published as soon as one is'
        )
        return undefined
      }
      const { bodyPart, subspecialty, priority } = await routeStudy(archive, study, routing)
      const readers = this.eligibleReaders(subspecialty)
      // The readers hold the study key before the case that makes them fetch it reaches them.
      await this.shareWith(studyUid, readers)
      const created = new Date()
      state = await worklist.publishCase({
        caseId,
        studyUid,
        siteName: this.o.registry.self.name,
        priority,
        subspecialty,
        modalities: study.modalities.filter(m => /^[A-Z0-9]{1,16}$/.test(m)).slice(0, 16),
        bodyPart: bodyPart.slice(0, 64),
        readers: readers as PeerIdString[],
        createdAt: created.toISOString(),
        dueAt: dueAt(created, priority, routing.dueMinutes),
        ...(acquiring ? { acquiring: true as const } : {})
      })
      await this.audit(
        'C',
        { type: 'peer', id: identity.peerId },
        state,
        `case published: ${priority} ${subspecialty}, ${readers.length} reader(s)`
      )
      log.info(
        { event: 'case-published', case: caseId, study: studyUid, priority, subspecialty, readers: readers.length },
        `case ${caseId} published (${priority}, ${subspecialty})`
      )
    } else {
      await this.shareWith(studyUid, state.readers)
    }
    return state
  }

  /**
   * The case of a de-identified copy: for the radiologists it was shared with, and no one else (the site's
   * routing rules choose its priority and subspecialty, never its readers). No case when it was shared with no
   * radiologist (a teaching file handed to a site, say). Its records name the copy only: the original stays
   * in the sealed mapping.
   */
  private async secondOpinionCase(
    caseId: string,
    study: StudyRecord,
    copy: DeidMapping
  ): Promise<CaseState | undefined> {
    const { worklist, routing, registry, identity, log } = this.o
    const now = Date.now()
    const readers = (copy.sharedWith ?? [])
      .filter(peer => {
        const certificate = registry.certificateOf(peer)
        return (
          certificate?.role === 'radiologist' && !registry.isRevoked(peer) && Date.parse(certificate.expiresAt) > now
        )
      })
      .sort()
    if (readers.length === 0) {
      log.info(
        { event: 'second-opinion-no-case', study: study.studyUid },
        'a de-identified copy shared with no radiologist: no case is published for it'
      )
      return undefined
    }
    const { subspecialty, priority } = route(
      { modalities: study.modalities, bodyPart: '', description: text(study, '00081030') },
      routing
    )
    const created = new Date(now)
    const state = await worklist.publishCase({
      caseId,
      studyUid: study.studyUid,
      siteName: registry.self.name,
      priority,
      subspecialty,
      modalities: study.modalities.filter(m => /^[A-Z0-9]{1,16}$/.test(m)).slice(0, 16),
      bodyPart: '',
      readers: readers as PeerIdString[],
      createdAt: created.toISOString(),
      dueAt: dueAt(created, priority, routing.dueMinutes),
      purpose: 'second-opinion'
    })
    await this.audit(
      'C',
      { type: 'peer', id: identity.peerId },
      state,
      `second-opinion case published for a de-identified copy: ${readers.length} reader(s)`
    )
    log.info(
      { event: 'second-opinion-published', case: caseId, study: study.studyUid, readers: readers.length },
      `second-opinion case ${caseId} published for ${readers.length} reader(s)`
    )
    return state
  }

  /** Shares the study's latest version with those readers that are members (a new version when it grew). */
  private async shareWith(studyUid: string, readers: readonly string[]): Promise<void> {
    const members = readers.filter(peer => this.o.registry.isMember(peer))
    if (members.length > 0) await this.o.exchange.share(studyUid, members, { type: 'peer', id: this.o.identity.peerId })
  }

  // Readers: prefetch, fetch on claim and consult

  /** Whether a radiologist is on duty now: inside one of its shifts, or always when it published none. */
  onDuty(peerId: string, now = Date.now()): boolean {
    const shifts = this.o.worklist.shifts().get(peerId)
    if (shifts === undefined) return true
    return shifts.some(shift => Date.parse(shift.start) <= now && now < Date.parse(shift.end))
  }

  /**
   * What changed records mean for this node: a site publishes the cases that waited for a reader; a reader
   * fetches the study of a case it holds or consults on, and prefetches STAT cases while on duty. Only the
   * cases the records are of are looked at, all of them when a duty shift, a member or a revocation changed.
   */
  private react(changed?: WorklistRecord[]): void {
    const me = this.o.identity.peerId
    if (this.isSite) {
      if (this.waitingForReaders.size > 0 && this.radiologists().length > 0) {
        for (const studyUid of [...this.waitingForReaders]) {
          this.waitingForReaders.delete(studyUid)
          this.caseForStudy(studyUid).catch(error => {
            this.o.log.error({ err: error, study: studyUid }, 'could not publish a waiting case')
          })
        }
      }
      return
    }
    const caseIds =
      changed === undefined || changed.length === 0 || changed.some(record => !('caseId' in record))
        ? undefined
        : new Set(changed.map(record => (record as { caseId: string }).caseId))
    const states =
      caseIds === undefined
        ? this.o.worklist.liveCases()
        : [...caseIds].flatMap(caseId => this.o.worklist.caseState(caseId) ?? [])
    for (const state of states) {
      if (this.prefetched.has(state.caseId) || state.status === 'COMPLETED' || state.status === 'CANCELED') continue
      const stat = state.priority === 'STAT' && state.readers.includes(me) && this.onDuty(me)
      const mine = state.claimedBy === me || state.consultants.includes(me)
      if (!stat && !mine) continue
      this.prefetched.add(state.caseId)
      this.fetchStudy(state, stat && !mine ? 'STAT prefetch' : 'claimed or consulted')
    }
  }

  private fetchStudy(state: CaseState, why: string, attempt = 1): void {
    const { exchange, identity, log } = this.o
    void (async () => {
      const availability = await exchange.availability(state.studyUid)
      if (availability?.complete === true) return
      log.info(
        { event: 'case-fetch', case: state.caseId, study: state.studyUid, why, attempt },
        `fetching the study of case ${state.caseId} (${why})`
      )
      // From the case's site only: a member's forged version of the same study UID is never taken for it.
      const fetch = exchange.fetch(state.studyUid, { type: 'peer', id: identity.peerId }, { origin: state.site })
      await fetch.settled()
      const { state: outcome, error } = await fetch.availability()
      if (outcome !== 'failed' || this.stopped) return
      // A key wrap can reach this node after the record that made it fetch (another path, a slow sharer).
      if (attempt >= FETCH_ATTEMPTS) {
        log.error(
          { event: 'case-fetch-failed', case: state.caseId, study: state.studyUid, error },
          `gave up fetching the study of case ${state.caseId} after ${attempt} attempts: ${error}`
        )
        return
      }
      log.warn(
        { event: 'case-fetch-retry', case: state.caseId, study: state.studyUid, error },
        `fetching the study of case ${state.caseId} failed (${error}); trying again in ${FETCH_RETRY_MS / 1000} s`
      )
      const timer = setTimeout(() => {
        if (!this.stopped) this.fetchStudy(state, why, attempt + 1)
      }, FETCH_RETRY_MS)
      timer.unref()
    })().catch(error => {
      log.warn({ err: error, case: state.caseId }, "could not start fetching a case's study")
    })
  }

  // Actions (the HTTP API calls these)

  async claim(caseId: string, actor: AuditActor): Promise<CaseState> {
    const state = await this.o.worklist.claim(caseId)
    await this.audit('U', actor, state, 'claimed')
    return state
  }

  async release(caseId: string, actor: AuditActor): Promise<CaseState> {
    const state = await this.o.worklist.release(caseId)
    await this.audit('U', actor, state, 'released')
    return state
  }

  async cancel(caseId: string, reason: string, actor: AuditActor): Promise<CaseState> {
    const state = await this.o.worklist.cancel(caseId, reason)
    await this.audit('D', actor, state, `canceled: ${reason}`)
    return state
  }

  /** Invites a consultant: the study key wrapped for them by this reader, then the consult record. */
  async consult(caseId: string, consultant: string, actor: AuditActor): Promise<CaseState> {
    const state = await this.o.worklist.invite(caseId, consultant, async ({ studyUid }) => {
      try {
        await this.o.exchange.share(studyUid, [consultant], actor)
      } catch (error) {
        throw new CaseError(
          'RADMESH_NOT_ALLOWED',
          `the study key could not be given to the consultant, so they were not invited: ${(error as Error).message}`
        )
      }
    })
    await this.audit('U', actor, state, `consult: ${consultant}`)
    return state
  }

  async setShifts(shifts: Shift[]): Promise<void> {
    if (this.isSite) throw new CaseError('RADMESH_NOT_ALLOWED', 'duty shifts are for radiologists; a site has none')
    await this.o.worklist.setShifts(shifts)
  }

  private async audit(
    action: 'C' | 'R' | 'U' | 'D',
    actor: AuditActor,
    state: CaseState,
    detail: string
  ): Promise<void> {
    await this.o.audit.append({
      event: 'orderRecord',
      action,
      outcome: 0,
      actor,
      study: state.studyUid,
      detail: `case ${state.caseId}: ${detail}`
    })
  }

  // Who shares which document

  syncPolicy(): SyncPolicy {
    const { worklist, reports, identity, documents } = this.o
    const me = identity.peerId
    const onCase = (state: CaseState, peer: string): boolean =>
      state.site === peer || state.readers.includes(peer) || state.consultants.includes(peer)
    const onReport = (state: CaseState | undefined, peer: string): boolean =>
      state !== undefined && reports.isParticipant(state, peer) && reports.isParticipant(state, me)
    return {
      sharedWith: peer => {
        const shared = [MEMBERS_DOC]
        for (const state of worklist.liveCases()) {
          if (!onCase(state, peer)) continue
          shared.push(caseDocId(state.caseId))
          // A report is in a digest once this node holds it open (it is opened as it is written or read).
          const report = reportDocId(state.caseId)
          if (documents.isOpen(report) && onReport(state, peer)) shared.push(report)
        }
        return shared
      },
      mayShare: (docId, peer) => {
        const kind = docKind(docId)
        if (kind.kind === 'members') return true
        const state = worklist.caseState(kind.caseId)
        return kind.kind === 'case' ? state !== undefined && onCase(state, peer) : onReport(state, peer)
      },
      // A case document's own records say whom it concerns (worklist.ts checks it); a report needs its case.
      mayReceive: (docId, peer) => {
        const kind = docKind(docId)
        return kind.kind !== 'report' || onReport(worklist.caseState(kind.caseId), peer)
      },
      prepare: async docId => {
        const kind = docKind(docId)
        if (kind.kind !== 'members') await worklist.ensureCase(kind.caseId)
      },
      // A claim or a consult adds a reader to an open case, who may lack what its report already holds, and a
      // consultant lacks the case itself. (Only open cases: a node back after months offline learns thousands
      // of old claims at once.)
      onSharingChange: listener =>
        worklist.onChange(records => {
          const docIds = new Set<string>()
          for (const record of records) {
            if (record.kind !== 'claim' && record.kind !== 'consult') continue
            const state = worklist.caseState(record.caseId)
            if (state === undefined || state.finalAt !== null || state.canceledAt !== null) continue
            docIds.add(caseDocId(record.caseId))
            docIds.add(reportDocId(record.caseId))
          }
          if (docIds.size > 0) listener([...docIds])
        }),
      check: async (docId, update, inspected) => {
        const kind = docKind(docId)
        if (kind.kind === 'report') await reports.checkUpdate(kind.caseId, update, inspected)
        else await worklist.checkUpdate(docId, inspected)
      }
    }
  }
}

/**
 * The consortium worklist, in small Yjs documents, each a root map `records` of signed records
 * (protocol/collab/records.ts), each under its own key, never overwritten or deleted:
 *
 *   `members`       member certificates and radiologists' duty shifts (every member holds it)
 *   `case:CASEID`   one case's records: the case, claims, releases, consults, cancel, signatures (held by
 *                   the case's site, its readers and its consultants)
 *
 * Cases, claims and turnaround times are derived from a case's records (cases.ts), so every node that holds
 * the same records shows the same case. Only *live* cases (open, or changed in the last days: case-index.ts)
 * are in memory and kept in step with the members they concern; every case is in the index on disk, queried
 * from there (`query`), and a closed case comes back to life when a change reaches it. So a node's memory,
 * start time and sync traffic follow the open worklist, not the age of the archive.
 *
 * An update from a peer is checked before it is applied: it may only add new entries (record-map.ts), each
 * a well-formed record under its own key, signed by its author, whose certificate (known to the registry or
 * published in the members document) has the role that kind of record needs; a case document holds records
 * of its own case only, and is taken only by a node the case concerns.
 */
import type { Logger } from 'pino'
import {
  type AuthoredWorklistRecord,
  type CaseRecord,
  type MemberRecord,
  recordKey,
  type Shift,
  type UnsignedWorklistRecord,
  type WorklistRecord
} from '../../protocol/collab/records.ts'
import { caseDocId, docKind } from '../../protocol/collab/sync.ts'
import type { PeerIdString } from '../../protocol/ids.ts'
import type { MemberCertificate } from '../../protocol/membership/index.ts'
import type { Documents } from '../crdt/documents.ts'
import { type InspectedUpdate, UpdateRefusedError } from '../crdt/inspect.ts'
import { CaseError } from '../errors.ts'
import type { Identity } from '../identity/keys.ts'
import type { MembershipRegistry } from '../membership/registry.ts'
import { type CaseIndex, type CaseQuery, type IndexedCase, isLive } from './case-index.ts'
import { checkCancel, checkInvite, claimOf, releaseOf } from './case-actions.ts'
import { type CaseState, deriveCases } from './cases.ts'
import { checkWorklistUpdate } from './check.ts'
import { carryOverLegacy } from './legacy.ts'
import { Members, MEMBERS_KINDS } from './members.ts'
import { arrivedRecords, recordsOf, signWorklistRecord, storedRecords } from './records.ts'

/** How often cases that are no longer live are let go of (unloaded; still in the index). */
const RETIRE_EVERY_MS = 3600_000

export interface WorklistOptions {
  documents: Documents
  identity: Identity
  registry: MembershipRegistry
  index: CaseIndex
  log: Logger
}

export type WorklistListener = (changed: WorklistRecord[]) => void

/** A case held in memory: its records, what they say, and when it last changed here. */
interface LoadedCase {
  records: Map<string, WorklistRecord>
  state: CaseState | undefined
  changedAt: string
  live: boolean
}

export class Worklist {
  private readonly options: WorklistOptions
  private readonly listeners = new Set<WorklistListener>()
  private readonly members: Members
  private readonly loaded = new Map<string, LoadedCase>()
  private readonly loading = new Map<string, Promise<LoadedCase | undefined>>()
  /** counts the changes to what `allCases` answers (`version`) */
  private changes = 0
  private retireTimer: NodeJS.Timeout | undefined
  private unsubscribeRevoked: (() => void) | undefined

  constructor(options: WorklistOptions) {
    this.options = options
    this.members = new Members({
      ...options,
      onChange: changed => {
        this.emit(changed)
      }
    })
  }

  async start(): Promise<void> {
    const { registry, index } = this.options
    await this.members.open()
    await carryOverLegacy(this.options, record => this.put(record))
    for (const caseId of await index.liveIds()) await this.load(caseId)
    this.unsubscribeRevoked = registry.onRevoked(() => {
      this.rederiveAll()
    })
    this.retireTimer = setInterval(() => {
      this.retire()
    }, RETIRE_EVERY_MS)
    this.retireTimer.unref()
    const record: MemberRecord = { kind: 'member', certificate: registry.self }
    await this.put(record)
  }

  stop(): void {
    clearInterval(this.retireTimer)
    this.unsubscribeRevoked?.()
  }

  onChange(listener: WorklistListener): () => void {
    this.listeners.add(listener)
    return () => {
      this.listeners.delete(listener)
    }
  }

  /** Moves on whenever what `allCases` answers or a member's name may have changed (a cached answer is stale). */
  version(): number {
    return this.changes
  }

  private emit(changed: WorklistRecord[]): void {
    this.changes++
    for (const listener of this.listeners) listener(changed)
  }

  // Case documents

  /** Opens a case's document (if this node has one) and holds the case in memory. */
  private async load(caseId: string): Promise<LoadedCase | undefined> {
    const held = this.loaded.get(caseId)
    if (held !== undefined) return held
    let loading = this.loading.get(caseId)
    if (loading === undefined) {
      loading = this.open(caseId).finally(() => {
        this.loading.delete(caseId)
      })
      this.loading.set(caseId, loading)
    }
    return await loading
  }

  private async open(caseId: string): Promise<LoadedCase | undefined> {
    const { documents, registry, index, log } = this.options
    const docId = caseDocId(caseId)
    if (!documents.isOpen(docId) && !(await documents.exists(docId))) return undefined
    const doc = await documents.open(docId)
    const records = await storedRecords(doc, registry.trust, log, 'case')
    const indexed = await index.get(caseId)
    const entry: LoadedCase = {
      records,
      state: undefined,
      changedAt: indexed?.changedAt ?? new Date().toISOString(),
      live: true
    }
    entry.state = this.derive(caseId, records)
    entry.live = entry.state === undefined || isLive(entry.state, entry.changedAt)
    this.loaded.set(caseId, entry)
    this.changes++
    recordsOf(doc).observe(event => {
      this.onCaseChange(caseId, event.keysChanged)
    })
    return entry
  }

  private derive(caseId: string, records: Map<string, WorklistRecord>): CaseState | undefined {
    return deriveCases(records.values(), peerId => this.options.registry.isRevoked(peerId)).get(caseId)
  }

  private onCaseChange(caseId: string, keys: Set<string>): void {
    const entry = this.loaded.get(caseId)
    const doc = this.options.documents.get(caseDocId(caseId))
    if (entry === undefined || doc === undefined) return
    const changed = arrivedRecords(doc, keys, entry.records, this.options.log, 'case')
    if (changed.length === 0) return
    entry.state = this.derive(caseId, entry.records)
    entry.changedAt = new Date().toISOString()
    entry.live = true
    if (entry.state !== undefined) this.options.index.put(entry.state, entry.changedAt, true)
    this.emit(changed)
  }

  /** A revocation can change who holds a case: every case in memory is derived again. */
  private rederiveAll(): void {
    for (const [caseId, entry] of this.loaded) entry.state = this.derive(caseId, entry.records)
    this.emit([])
  }

  /** Cases no longer live are let go of: out of memory, out of the documents kept open; still in the index. */
  retire(now = Date.now()): string[] {
    const retired: string[] = []
    for (const [caseId, entry] of this.loaded) {
      // A document begun for records that never made a case (refused, say) is let go of after an hour.
      const stale = entry.state === undefined && now - Date.parse(entry.changedAt) > 3600_000
      if (!stale && (entry.state === undefined || isLive(entry.state, entry.changedAt, now))) continue
      this.loaded.delete(caseId)
      this.options.index.retire(caseId)
      this.options.documents.unload(caseDocId(caseId))
      retired.push(caseId)
    }
    if (retired.length > 0) {
      this.changes++
      this.options.log.info(
        { event: 'cases-retired', cases: retired.length },
        `${retired.length} closed case(s) left the live worklist`
      )
    }
    return retired
  }

  // Reading

  /** The cases in memory: live ones, and closed ones asked for since (`ensureCase`). */
  allCases(): CaseState[] {
    const states: CaseState[] = []
    for (const entry of this.loaded.values()) if (entry.state !== undefined) states.push(entry.state)
    return states
  }

  /** The live cases: open, or changed in the last days. */
  liveCases(): CaseState[] {
    const states: CaseState[] = []
    for (const entry of this.loaded.values()) if (entry.live && entry.state !== undefined) states.push(entry.state)
    return states
  }

  /** A case in memory (live, or loaded by `ensureCase`). */
  caseState(caseId: string): CaseState | undefined {
    return this.loaded.get(caseId)?.state
  }

  /** A case, loaded from disk if it is not in memory (a closed case asked for by the viewer or the API). */
  async ensureCase(caseId: string): Promise<CaseState | undefined> {
    return (await this.load(caseId))?.state
  }

  /** Cases from the index, live or not (`/api/cases`). */
  async query(query: CaseQuery): Promise<{ cases: IndexedCase[]; next: string | undefined }> {
    return await this.options.index.query(query)
  }

  /** The latest duty record of each radiologist. */
  shifts(): Map<string, Shift[]> {
    return this.members.shifts()
  }

  /** Certificates of every member published in the worklist. */
  memberCertificates(): MemberCertificate[] {
    return this.members.memberCertificates()
  }

  /** A member's certificate: as the registry knows it (a connection, or learnt from here), else as published here. */
  certificateOf(peerId: string): MemberCertificate | undefined {
    return this.members.certificateOf(peerId)
  }

  /** A member's name for people to read, or its peer id when this node knows no certificate for it. */
  nameOf(peerId: string): string {
    return this.members.nameOf(peerId)
  }

  // Writing

  /** Signs a record as this node and adds it; resolves once it is on disk. */
  async add<R extends UnsignedWorklistRecord>(record: R): Promise<R & { signature: string }> {
    const signed = await signWorklistRecord(this.options.identity.privateKey, record)
    await this.put(signed as unknown as AuthoredWorklistRecord)
    return signed
  }

  private async put(record: WorklistRecord): Promise<void> {
    if (MEMBERS_KINDS.has(record.kind)) {
      await this.members.put(record)
      return
    }
    const key = recordKey(record)
    const caseId = (record as AuthoredWorklistRecord & { caseId: string }).caseId
    const docId = caseDocId(caseId)
    await this.hold(caseId)
    const doc = await this.options.documents.open(docId)
    if (recordsOf(doc).has(key)) return
    await this.options.documents.change(docId, () => {
      recordsOf(doc).set(key, record)
    })
  }

  /**
   * The case held in memory, loaded from disk, or (a case this node has no document of yet) begun empty: its
   * document is watched from here on, so records that reach it (written here, or from a peer) make the case.
   */
  private async hold(caseId: string): Promise<LoadedCase> {
    const loaded = await this.load(caseId)
    if (loaded !== undefined) return loaded
    const held = this.loaded.get(caseId)
    if (held !== undefined) return held
    const doc = await this.options.documents.open(caseDocId(caseId))
    const entry: LoadedCase = { records: new Map(), state: undefined, changedAt: new Date().toISOString(), live: true }
    this.loaded.set(caseId, entry)
    recordsOf(doc).observe(event => {
      this.onCaseChange(caseId, event.keysChanged)
    })
    return entry
  }

  /** A case for a stable study, published by this site. */
  async publishCase(fields: Omit<CaseRecord, 'kind' | 'v' | 'by' | 'at' | 'signature' | 'site'>): Promise<CaseState> {
    const { identity } = this.options
    const now = new Date().toISOString()
    await this.add({ v: 1, kind: 'case', ...fields, site: identity.peerId, by: identity.peerId, at: now })
    return this.caseState(fields.caseId) as CaseState
  }

  /**
   * This site says the study of one of its acquiring cases is complete (stable, with `instances` instances);
   * nothing is written for a case that is not acquiring or already complete.
   */
  async markAcquired(caseId: string, instances: number): Promise<CaseState | undefined> {
    const state = this.caseState(caseId)
    const me = this.options.identity.peerId
    if (state === undefined || state.arriving !== true || state.site !== me) return state
    await this.add({ v: 1, kind: 'acquired', caseId, instances, by: me, at: new Date().toISOString() })
    return this.caseState(caseId)
  }

  /** The case, or a 404 error naming it. */
  requireCase(caseId: string): CaseState {
    const state = this.caseState(caseId)
    if (state === undefined) {
      throw new CaseError('RADMESH_NOT_FOUND', `no case ${caseId} on this node's worklist (it may not have synced yet)`)
    }
    return state
  }

  /**
   * This reader takes the case (SCHEDULED -> IN PROGRESS). Claiming a case one already holds is a no-op;
   * a case someone else holds is refused (409). See cases.ts for how concurrent claims are decided.
   */
  async claim(caseId: string): Promise<CaseState> {
    const claim = claimOf(this.requireCase(caseId), this.options.identity.peerId, peerId => this.nameOf(peerId))
    if (claim !== undefined) await this.add(claim)
    return this.requireCase(caseId)
  }

  /** The holder gives the case back (IN PROGRESS -> SCHEDULED). */
  async release(caseId: string): Promise<CaseState> {
    await this.add(releaseOf(this.requireCase(caseId), this.options.identity.peerId, peerId => this.nameOf(peerId)))
    return this.requireCase(caseId)
  }

  /**
   * The holder invites a second reader (a radiologist member) onto the case's report. `beforeRecord` runs
   * once the invitation is known to be allowed and before the consult record is written: the study key
   * reaches the consultant before the record that makes it fetch.
   */
  async invite(
    caseId: string,
    consultant: string,
    beforeRecord?: (state: CaseState) => Promise<void>
  ): Promise<CaseState> {
    const me = this.options.identity.peerId
    const state = this.requireCase(caseId)
    const isMember = this.options.registry.isMember(consultant)
    checkInvite(state, me, consultant, this.certificateOf(consultant), isMember)
    await beforeRecord?.(state)
    if (!state.consultants.includes(consultant)) {
      const at = new Date().toISOString()
      await this.add({ v: 1, kind: 'consult', caseId, consultant: consultant as PeerIdString, by: me, at })
    }
    return this.requireCase(caseId)
  }

  /** The site withdraws one of its cases. */
  async cancel(caseId: string, reason: string): Promise<CaseState> {
    const me = this.options.identity.peerId
    checkCancel(this.requireCase(caseId), me)
    await this.add({ v: 1, kind: 'cancel', caseId, reason, by: me, at: new Date().toISOString() })
    return this.requireCase(caseId)
  }

  /** Mirrors a report signature in the worklist (times and a hash, no content). */
  async recordSignature(
    caseId: string,
    status: 'PRELIMINARY' | 'FINAL' | 'ADDENDUM',
    reportHash: string,
    at: string
  ): Promise<void> {
    await this.add({ v: 1, kind: 'signed', caseId, status, reportHash, by: this.options.identity.peerId, at })
  }

  async setShifts(shifts: Shift[]): Promise<void> {
    await this.add({ v: 1, kind: 'duty', shifts, by: this.options.identity.peerId, at: new Date().toISOString() })
  }

  // Checking what peers send

  /** Throws UpdateRefusedError unless every new item of an update to a worklist document is a new, valid record. */
  async checkUpdate(docId: string, update: InspectedUpdate): Promise<void> {
    const kind = docKind(docId)
    if (kind.kind === 'report') throw new Error('a report is not a worklist document')
    // A case document is watched before anything of it is applied, so its records make the case.
    if (kind.kind === 'case') await this.hold(kind.caseId)
    const doc = kind.kind === 'members' ? this.members.document : await this.options.documents.open(docId)
    if (doc === undefined) throw new UpdateRefusedError('the worklist is not open', 0)
    await checkWorklistUpdate(doc, update, {
      kind,
      trust: this.options.registry.trust,
      certificateOf: peerId => this.certificateOf(peerId),
      held: () => (kind.kind === 'case' ? (this.loaded.get(kind.caseId)?.records.values() ?? []) : []),
      me: this.options.identity.peerId
    })
  }
}

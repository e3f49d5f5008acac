/**
 * The consortium worklist: one Yjs document (`worklist`) whose root map `records` holds signed records
 * (protocol/collab/records.ts), each under its own key, never overwritten or deleted. Cases, claims and
 * turnaround times are derived from the records (cases.ts), so every node that holds the same records
 * shows the same worklist.
 *
 * An update from a peer is checked before it is applied: it may only add new entries to `records`, each a
 * well-formed record under its own key, signed by its author, whose certificate (known to the registry or
 * published in the worklist) has the role that kind of record needs.
 */
import type { Logger } from 'pino'
import * as Y from 'yjs'
import {
  type AuthoredWorklistRecord,
  type CaseRecord,
  decodeWorklistRecord,
  type MemberRecord,
  type Priority,
  recordKey,
  type Shift,
  type UnsignedWorklistRecord,
  type WorklistRecord
} from '../../protocol/collab/records.ts'
import { WORKLIST_DOC } from '../../protocol/collab/sync.ts'
import type { PeerIdString } from '../../protocol/ids.ts'
import type { MemberCertificate } from '../../protocol/membership/index.ts'
import { CaseError } from '../errors.ts'
import type { Identity } from '../identity/keys.ts'
import type { MembershipRegistry } from '../membership/registry.ts'
import { type CaseState, deriveCases } from './cases.ts'
import type { Documents } from './documents.ts'
import { type InspectedUpdate, UpdateRefusedError } from './inspect.ts'
import { signWorklistRecord, verifiedWorklistRecord } from './records.ts'

export const RECORDS_MAP = 'records'

/** Which role may author each kind of record. */
const AUTHOR_ROLE: Record<AuthoredWorklistRecord['kind'], 'site' | 'radiologist'> = {
  case: 'site',
  cancel: 'site',
  claim: 'radiologist',
  release: 'radiologist',
  consult: 'radiologist',
  signed: 'radiologist',
  duty: 'radiologist'
}

export interface WorklistOptions {
  documents: Documents
  identity: Identity
  registry: MembershipRegistry
  log: Logger
}

export type WorklistListener = (changed: WorklistRecord[]) => void

export class Worklist {
  private readonly options: WorklistOptions
  private readonly records = new Map<string, WorklistRecord>()
  private readonly listeners = new Set<WorklistListener>()
  /** member certificates published in the worklist, the latest-expiring one per member */
  private readonly certificates = new Map<string, MemberCertificate>()
  private cases = new Map<string, CaseState>()
  private doc: Y.Doc | undefined

  constructor (options: WorklistOptions) {
    this.options = options
  }

  private get map (): Y.Map<unknown> {
    if (this.doc === undefined) throw new Error('the worklist is not open')
    return this.doc.getMap(RECORDS_MAP)
  }

  async start (): Promise<void> {
    const { documents, registry, log } = this.options
    this.doc = await documents.open(WORKLIST_DOC)
    let dropped = 0
    for (const [key, value] of this.map.entries()) {
      try {
        this.remember(key, await verifiedWorklistRecord(key, value, registry.trust))
      } catch (error) {
        dropped++
        log.warn({ event: 'worklist-record-dropped', key, error: (error as Error).message }, 'a stored worklist record does not verify; it is ignored')
      }
    }
    await this.learnMembers([...this.records.values()])
    this.derive()
    this.map.observe(event => {
      const changed: WorklistRecord[] = []
      for (const key of event.keysChanged) {
        const value = this.map.get(key)
        if (value === undefined || this.records.has(key)) continue
        // Remote records were verified before they were applied (checkUpdate); local ones were signed here.
        try {
          const record = decodeWorklistRecord(value)
          this.remember(key, record)
          changed.push(record)
        } catch (error) {
          log.error({ event: 'worklist-record-dropped', key, error: (error as Error).message }, 'a worklist record that passed its check does not decode; it is ignored')
        }
      }
      if (changed.length === 0) return
      this.learnMembers(changed).catch(error => { log.warn({ err: error }, 'could not record a member certificate from the worklist') })
      this.derive()
      for (const listener of this.listeners) listener(changed)
    })
    if (dropped > 0) log.warn({ event: 'worklist-loaded', records: this.records.size, dropped }, 'worklist loaded with dropped records')
    await this.publishMember(registry.self)
  }

  onChange (listener: WorklistListener): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  private remember (key: string, record: WorklistRecord): void {
    this.records.set(key, record)
    if (record.kind !== 'member') return
    const known = this.certificates.get(record.certificate.peerId)
    if (known === undefined || Date.parse(known.expiresAt) < Date.parse(record.certificate.expiresAt)) this.certificates.set(record.certificate.peerId, record.certificate)
  }

  private derive (): void {
    this.cases = deriveCases(this.records.values(), peerId => this.options.registry.isRevoked(peerId))
  }

  /** Certificates published in the worklist make their members known to the registry (roles, wrap keys). */
  private async learnMembers (records: WorklistRecord[]): Promise<void> {
    for (const record of records) {
      if (record.kind !== 'member' || record.certificate.peerId === this.options.identity.peerId) continue
      const known = this.options.registry.certificateOf(record.certificate.peerId)
      if (known === undefined || Date.parse(known.expiresAt) < Date.parse(record.certificate.expiresAt)) await this.options.registry.recordVerified(record.certificate)
    }
  }

  // Reading

  allCases (): CaseState[] {
    return [...this.cases.values()]
  }

  caseState (caseId: string): CaseState | undefined {
    return this.cases.get(caseId)
  }

  /** The latest duty record of each radiologist. */
  shifts (): Map<string, Shift[]> {
    const latest = new Map<string, { at: string, shifts: Shift[] }>()
    for (const record of this.records.values()) {
      if (record.kind !== 'duty') continue
      const known = latest.get(record.by)
      if (known === undefined || known.at < record.at) latest.set(record.by, { at: record.at, shifts: record.shifts })
    }
    return new Map([...latest].map(([peer, { shifts }]) => [peer, shifts]))
  }

  /** Certificates of every member published in the worklist. */
  memberCertificates (): MemberCertificate[] {
    return [...this.certificates.values()]
  }

  /** A member's certificate: as the registry knows it (a connection, or learnt from here), else as published here. */
  certificateOf (peerId: string): MemberCertificate | undefined {
    return this.options.registry.certificateOf(peerId) ?? this.certificates.get(peerId)
  }

  /** A member's name for people to read, or its peer id when this node knows no certificate for it. */
  nameOf (peerId: string): string {
    return this.certificateOf(peerId)?.name ?? peerId
  }

  // Writing

  /** Signs a record as this node and adds it; resolves once it is on disk. */
  async add<R extends UnsignedWorklistRecord> (record: R): Promise<R & { signature: string }> {
    const signed = await signWorklistRecord(this.options.identity.privateKey, record)
    await this.put(signed as unknown as AuthoredWorklistRecord)
    return signed
  }

  private async put (record: WorklistRecord): Promise<void> {
    const key = recordKey(record)
    if (this.map.has(key)) return
    await this.options.documents.change(WORKLIST_DOC, () => { this.map.set(key, record) })
  }

  private async publishMember (certificate: MemberCertificate): Promise<void> {
    const record: MemberRecord = { kind: 'member', certificate }
    await this.put(record)
  }

  /** A case for a stable study, published by this site. */
  async publishCase (fields: Omit<CaseRecord, 'kind' | 'v' | 'by' | 'at' | 'signature' | 'site'>): Promise<CaseState> {
    const { identity } = this.options
    const now = new Date().toISOString()
    await this.add({ v: 1, kind: 'case', ...fields, site: identity.peerId, by: identity.peerId, at: now })
    return this.cases.get(fields.caseId) as CaseState
  }

  /** The case, or a 404 error naming it. */
  requireCase (caseId: string): CaseState {
    const state = this.cases.get(caseId)
    if (state === undefined) throw new CaseError('RADMESH_NOT_FOUND', `no case ${caseId} on this node's worklist (it may not have synced yet)`)
    return state
  }

  private requireOpen (state: CaseState): void {
    if (state.status === 'COMPLETED' || state.status === 'CANCELED') throw new CaseError('RADMESH_CASE_CLOSED', `case ${state.caseId} is ${state.status}`)
  }

  /**
   * This reader takes the case (SCHEDULED -> IN PROGRESS). Claiming a case one already holds is a no-op;
   * a case someone else holds is refused (409). See cases.ts for how concurrent claims are decided.
   */
  async claim (caseId: string): Promise<CaseState> {
    const me = this.options.identity.peerId
    const state = this.requireCase(caseId)
    this.requireOpen(state)
    if (state.claimedBy === me) return state
    if (state.claimedBy !== null) throw new CaseError('RADMESH_CASE_TAKEN', `case ${caseId} is held by ${this.nameOf(state.claimedBy)} (${state.claimedBy}) since ${state.claimedAt ?? 'earlier'}`)
    if (!state.readers.includes(me)) throw new CaseError('RADMESH_NOT_ALLOWED', `case ${caseId} was not routed to this reader (subspecialty ${state.subspecialty})`)
    await this.add({ v: 1, kind: 'claim', caseId, seq: state.seq + 1, by: me, at: new Date().toISOString() })
    return this.requireCase(caseId)
  }

  /** The holder gives the case back (IN PROGRESS -> SCHEDULED). */
  async release (caseId: string): Promise<CaseState> {
    const me = this.options.identity.peerId
    const state = this.requireCase(caseId)
    this.requireOpen(state)
    if (state.claimedBy !== me || state.claim === null) throw new CaseError('RADMESH_NOT_ALLOWED', `case ${caseId} is not held by this reader${state.claimedBy === null ? '' : ` (${this.nameOf(state.claimedBy)} holds it)`}`)
    await this.add({ v: 1, kind: 'release', caseId, claim: state.claim, seq: state.seq + 1, by: me, at: new Date().toISOString() })
    return this.requireCase(caseId)
  }

  /**
   * The holder invites a second reader (a radiologist member) onto the case's report. `beforeRecord` runs
   * once the invitation is known to be allowed and before the consult record is written: the study key
   * reaches the consultant before the record that makes it fetch.
   */
  async invite (caseId: string, consultant: string, beforeRecord?: (state: CaseState) => Promise<void>): Promise<CaseState> {
    const me = this.options.identity.peerId
    const state = this.requireCase(caseId)
    this.requireOpen(state)
    if (state.claimedBy !== me) throw new CaseError('RADMESH_NOT_ALLOWED', `only the reader holding case ${caseId} can invite a consultant`)
    const certificate = this.certificateOf(consultant)
    if (certificate === undefined || !this.options.registry.isMember(consultant)) throw new CaseError('RADMESH_NOT_A_MEMBER', `${consultant} is not a member this node knows`)
    if (certificate.role !== 'radiologist') throw new CaseError('RADMESH_NOT_ALLOWED', `${certificate.name} is a ${certificate.role}; only radiologists can be consulted`)
    await beforeRecord?.(state)
    if (!state.consultants.includes(consultant)) await this.add({ v: 1, kind: 'consult', caseId, consultant: consultant as PeerIdString, by: me, at: new Date().toISOString() })
    return this.requireCase(caseId)
  }

  /** The site withdraws one of its cases. */
  async cancel (caseId: string, reason: string): Promise<CaseState> {
    const state = this.requireCase(caseId)
    this.requireOpen(state)
    if (state.site !== this.options.identity.peerId) throw new CaseError('RADMESH_NOT_ALLOWED', `only the site that published case ${caseId} can cancel it`)
    await this.add({ v: 1, kind: 'cancel', caseId, reason, by: this.options.identity.peerId, at: new Date().toISOString() })
    return this.requireCase(caseId)
  }

  /** Mirrors a report signature in the worklist (times and a hash, no content). */
  async recordSignature (caseId: string, status: 'PRELIMINARY' | 'FINAL' | 'ADDENDUM', reportHash: string, at: string): Promise<void> {
    await this.add({ v: 1, kind: 'signed', caseId, status, reportHash, by: this.options.identity.peerId, at })
  }

  async setShifts (shifts: Shift[]): Promise<void> {
    await this.add({ v: 1, kind: 'duty', shifts, by: this.options.identity.peerId, at: new Date().toISOString() })
  }

  // Checking what peers send

  /** Throws UpdateRefusedError unless every item of the update is a new, valid record (see the file comment). */
  async checkUpdate (update: InspectedUpdate): Promise<void> {
    const { registry } = this.options
    const doc = this.doc
    if (doc === undefined) throw new UpdateRefusedError('the worklist is not open', 0)
    if (update.deletes.length > 0 || update.otherStructs > 0) throw new UpdateRefusedError('the update deletes worklist records; records are never deleted', 5)
    const firstClock = new Map<number, number>()
    for (const item of update.items) firstClock.set(item.client, Math.min(firstClock.get(item.client) ?? Infinity, item.clock))
    for (const [client, clock] of firstClock) {
      if (clock > Y.getState(doc.store, client)) throw new UpdateRefusedError('the update builds on worklist updates this node does not have yet', 0)
    }
    const incoming: Array<{ key: string, value: unknown }> = []
    for (const item of update.items) {
      if (item.kind !== 'any' || item.hasOrigin || item.root !== RECORDS_MAP || item.parentSub === null || item.values?.length !== 1) {
        throw new UpdateRefusedError(`the update changes the worklist other than by adding a record (a ${item.kind} item${item.root === null ? '' : ` in ${item.root}`})`, 5)
      }
      const existing = this.map.get(item.parentSub)
      if (existing !== undefined && item.clock >= Y.getState(doc.store, item.client)) throw new UpdateRefusedError(`the update overwrites worklist record ${item.parentSub}`, 5)
      incoming.push({ key: item.parentSub, value: item.values[0] })
    }
    const verified: WorklistRecord[] = []
    for (const { key, value } of incoming) {
      try {
        verified.push(await verifiedWorklistRecord(key, value, registry.trust))
      } catch (error) {
        throw new UpdateRefusedError((error as Error).message, 5)
      }
    }
    const arriving = new Map<string, MemberCertificate>()
    for (const record of verified) if (record.kind === 'member') arriving.set(record.certificate.peerId, record.certificate)
    for (const record of verified) {
      if (record.kind === 'member') continue
      const certificate = this.certificateOf(record.by) ?? arriving.get(record.by)
      if (certificate === undefined) throw new UpdateRefusedError(`the ${record.kind} record's author ${record.by} is not a member this node knows yet`, 0)
      if (certificate.role !== AUTHOR_ROLE[record.kind]) throw new UpdateRefusedError(`a ${record.kind} record must be written by a ${AUTHOR_ROLE[record.kind]}, and ${certificate.name} is a ${certificate.role}`, 5)
    }
  }
}

/** Due time of a case created at `createdAt` with `priority`. */
export function dueAt (createdAt: Date, priority: Priority, dueMinutes: Record<Priority, number>): string {
  return new Date(createdAt.getTime() + dueMinutes[priority] * 60_000).toISOString()
}

/**
 * Reports: one Yjs document per case (`report:CASEID`), held only by the case's site and its readers (every
 * reader who claimed it, and the consultants). Its roots:
 *   indication, technique, comparison, findings, impression   Y.Text, one per section (root types, so two
 *                     readers starting a section at once never create two competing texts)
 *   editors           Y.Map: Yjs client id -> binding record ("client N of this report is reader R", signed by R)
 *   signatures        Y.Map: record key -> report-signature record (PRELIMINARY, FINAL, ADDENDUM), signed
 *
 * A FINAL signature holds the signed sections themselves: the FINAL report is that record, immutable
 * whatever happens to the live texts after it, and verifiable by anyone who has it.
 *
 * An update from a peer is tried on a copy of the document first (reports are small) and refused unless:
 * every new item sits in one of the roots above; section text comes from a client bound to one of the
 * case's readers; bindings and signatures are new entries, signed by their author, who is a reader of the
 * case (a site never signs); no entry of `editors` or `signatures` disappears; and, once the report is FINAL,
 * no section changes. An update that builds on updates this node lacks waits for the next sync round.
 */
import { createHash } from 'node:crypto'
import type { Logger } from 'pino'
import * as Y from 'yjs'
import {
  type BindingRecord,
  MAX_SECTION_CHARS,
  recordKey,
  type ReportRecord,
  type ReportSignatureRecord,
  SECTION_NAMES,
  type SectionName,
  type Sections
} from '../../protocol/collab/records.ts'
import { reportDocId } from '../../protocol/collab/sync.ts'
import type { ReportView } from '../../protocol/api/reports.ts'
import { canonicalJson, type Json } from '../../protocol/json.ts'
import type { PeerIdString } from '../../protocol/ids.ts'
import type { AuditActor, AuditLog } from '../audit/log.ts'
import { CaseError } from '../errors.ts'
import type { Identity } from '../identity/keys.ts'
import { type CaseState, editorsOf } from './cases.ts'
import type { Documents } from './documents.ts'
import { type InspectedUpdate, UpdateRefusedError } from './inspect.ts'
import { changeBetween, mergeEdit } from './text-merge.ts'
import { signReportRecord, verifiedReportRecord } from './records.ts'
import type { Worklist } from './worklist.ts'

export const EDITORS_MAP = 'editors'
export const SIGNATURES_MAP = 'signatures'
export { REPORT_STATUSES, type ReportStatus, type ReportView } from '../../protocol/api/reports.ts'

export interface ReportsOptions {
  documents: Documents
  identity: Identity
  worklist: Worklist
  /** every read and change of a report is recorded (110110 Patient Record), whoever asks */
  audit: Pick<AuditLog, 'append'>
  log: Logger
}

/** SHA-256 (hex) of what a signature covers: the case, the study and the sections, canonically. */
export function reportHash (caseId: string, studyUid: string, sections: Sections): string {
  return createHash('sha256').update(canonicalJson({ caseId, studyUid, sections } as unknown as Json)).digest('hex')
}

/** Declares the report's roots with their types, so peers' updates land in the right shapes. */
function declareRoots (doc: Y.Doc): void {
  for (const name of SECTION_NAMES) doc.getText(name)
  doc.getMap(EDITORS_MAP)
  doc.getMap(SIGNATURES_MAP)
}

function sectionsOf (doc: Y.Doc): Sections {
  const sections = {} as Sections
  for (const name of SECTION_NAMES) sections[name] = doc.getText(name).toString()
  return sections
}

const signaturesOf = (doc: Y.Doc): ReportSignatureRecord[] =>
  [...doc.getMap<ReportRecord>(SIGNATURES_MAP).values()].filter((r): r is ReportSignatureRecord => r.kind === 'report-signature')
    .sort((a, b) => a.at < b.at ? -1 : a.at > b.at ? 1 : a.signature < b.signature ? -1 : 1)

/** The report's FINAL signature: the earliest by a reader of the case (a later one, made concurrently, only co-signs). */
function finalOf (doc: Y.Doc, editors: Set<string>): ReportSignatureRecord | undefined {
  return signaturesOf(doc).find(r => r.status === 'FINAL' && editors.has(r.by))
}

/** Replaces a Y.Text's content by `next` with the smallest edit (common prefix and suffix kept). */
function replaceText (text: Y.Text, next: string): void {
  const current = text.toString()
  if (current === next) return
  const { start, end, insert } = changeBetween(current, next)
  if (end > start) text.delete(start, end - start)
  if (insert.length > 0) text.insert(start, insert)
}

export class Reports {
  private readonly options: ReportsOptions
  /** signature record keys whose Ed25519 signature was checked */
  private readonly verified = new Set<string>()

  constructor (options: ReportsOptions) {
    this.options = options
  }

  /** Who holds a case's report: its site and its readers. */
  participants (state: CaseState): string[] {
    return [...new Set([state.site, ...editorsOf(state)])]
  }

  isParticipant (state: CaseState, peerId: string): boolean {
    return this.participants(state).includes(peerId)
  }

  /** The case, if this node may read its report; throws CaseError otherwise. */
  readable (caseId: string): CaseState {
    const state = this.options.worklist.requireCase(caseId)
    if (!this.isParticipant(state, this.options.identity.peerId)) {
      throw new CaseError('RADMESH_NOT_ALLOWED', `this node is not on case ${caseId}: only its site, the readers who claimed it and invited consultants hold its report`)
    }
    return state
  }

  /**
   * Opens the reports of the live cases this node is on that have one stored (at start): a report open here
   * is in the digests that keep it in step with the case's other readers (sync.ts).
   */
  async openLive (): Promise<void> {
    const me = this.options.identity.peerId
    for (const state of this.options.worklist.liveCases()) {
      if (state.claimers.length === 0 || !this.isParticipant(state, me)) continue
      if (await this.options.documents.exists(reportDocId(state.caseId))) await this.open(state.caseId)
    }
  }

  async open (caseId: string): Promise<Y.Doc> {
    const doc = await this.options.documents.open(reportDocId(caseId))
    declareRoots(doc)
    return doc
  }

  async view (caseId: string): Promise<ReportView> {
    const state = this.readable(caseId)
    const doc = await this.open(caseId)
    const editors = new Set(editorsOf(state))
    const signatures = signaturesOf(doc).filter(r => editors.has(r.by))
    const final = signatures.find(r => r.status === 'FINAL')
    const addenda = final === undefined ? [] : signatures.filter(r => r.status === 'ADDENDUM')
    const preliminary = signatures.some(r => r.status === 'PRELIMINARY')
    // In the order they first wrote (a Y.Map's own order differs between nodes), so every node shows the same list.
    const bindings = [...doc.getMap<BindingRecord>(EDITORS_MAP).values()].sort((a, b) => a.at < b.at ? -1 : a.at > b.at ? 1 : a.by < b.by ? -1 : a.by > b.by ? 1 : 0)
    const authors = [...new Set(bindings.map(b => b.by))]
    const signatureViews: ReportView['signatures'] = []
    for (const record of signatures) {
      signatureViews.push({
        peerId: record.by,
        name: this.options.worklist.nameOf(record.by),
        status: record.status,
        at: record.at,
        reportHash: reportHash(record.caseId, record.studyUid, record.sections),
        verified: await this.verify(record)
      })
    }
    return {
      caseId,
      studyInstanceUid: state.studyUid,
      status: final === undefined ? (preliminary ? 'PRELIMINARY' : 'DRAFT') : addenda.length > 0 ? 'AMENDED' : 'FINAL',
      sections: final?.sections ?? sectionsOf(doc),
      authors: authors.map(peerId => ({ peerId, name: this.options.worklist.nameOf(peerId) })),
      signatures: signatureViews,
      addenda: addenda.map(r => ({ text: r.text, peerId: r.by, name: this.options.worklist.nameOf(r.by), at: r.at })),
      finalAt: final?.at ?? null
    }
  }

  /** The report as `view` shows it, the read recorded in the audit trail. */
  async read (caseId: string, actor: AuditActor, detail = 'read'): Promise<ReportView> {
    const view = await this.view(caseId)
    await this.audited(this.readable(caseId), 'R', actor, detail)
    return view
  }

  /** Records a read ('R') or change ('U') of a case's report in the audit trail (110110 Patient Record). */
  async audited (state: CaseState, action: 'R' | 'U', actor: AuditActor, detail: string): Promise<void> {
    const entry = { event: 'patientRecord', action, outcome: 0, actor, study: state.studyUid } as const
    await this.options.audit.append({ ...entry, detail: `report of case ${state.caseId}: ${detail}` })
  }

  /** The FINAL signature record of a case's report, if there is one (for delivery to the site). */
  async finalSignature (caseId: string): Promise<{ final: ReportSignatureRecord, addenda: ReportSignatureRecord[] } | undefined> {
    const state = this.readable(caseId)
    const doc = await this.open(caseId)
    const editors = new Set(editorsOf(state))
    const final = finalOf(doc, editors)
    if (final === undefined) return undefined
    return { final, addenda: signaturesOf(doc).filter(r => r.status === 'ADDENDUM' && editors.has(r.by)) }
  }

  private async verify (record: ReportSignatureRecord): Promise<boolean> {
    const key = recordKey(record)
    if (this.verified.has(key)) return true
    try {
      await verifiedReportRecord(key, record)
      this.verified.add(key)
      return true
    } catch {
      return false
    }
  }

  /** Who may change the report now: the reader holding the case, and its consultants. */
  private writable (caseId: string): CaseState {
    const state = this.readable(caseId)
    const me = this.options.identity.peerId
    if (state.claimedBy !== me && !state.consultants.includes(me)) {
      throw new CaseError('RADMESH_NOT_ALLOWED', state.site === me
        ? `a site cannot write or sign reports; case ${caseId} is read by its readers`
        : `only the reader holding case ${caseId} and its consultants can write its report; claim it first`)
    }
    return state
  }

  /** A binding for this node's Yjs client in the report, made once per client (signed before the transaction). */
  private async bindingIfNeeded (caseId: string, doc: Y.Doc): Promise<BindingRecord | undefined> {
    if (doc.getMap(EDITORS_MAP).has(String(doc.clientID))) return undefined
    return await signReportRecord(this.options.identity.privateKey, { v: 1, kind: 'binding', caseId, clientId: doc.clientID, by: this.options.identity.peerId, at: new Date().toISOString() })
  }

  /**
   * A binding of a viewer's Yjs client to this node's member, for the viewer to write into the report itself
   * (a binding must be written by the client it binds). Only a reader of the case gets one.
   */
  async viewerBinding (caseId: string, clientId: number): Promise<BindingRecord> {
    this.writable(caseId)
    if (!Number.isSafeInteger(clientId) || clientId < 0 || clientId > 0xffffffff) throw new CaseError('RADMESH_NOT_ALLOWED', 'a Yjs client id is an integer from 0 to 2^32 - 1')
    const doc = await this.open(caseId)
    const existing = doc.getMap<BindingRecord>(EDITORS_MAP).get(String(clientId))
    if (existing !== undefined && existing.by !== this.options.identity.peerId) throw new CaseError('RADMESH_NOT_ALLOWED', `Yjs client ${clientId} is bound to another member; open the report again`)
    return existing ?? await signReportRecord(this.options.identity.privateKey, { v: 1, kind: 'binding', caseId, clientId, by: this.options.identity.peerId, at: new Date().toISOString() })
  }

  /**
   * Replaces the given sections, as one edit; durable before it resolves. With a `base` for a section (the
   * text the writer started from), only the writer's change from it is made, so what others wrote since is
   * kept; if their change meets it, nothing is written and RADMESH_REPORT_CHANGED says so.
   */
  async edit (caseId: string, sections: Partial<Sections>, base: Partial<Sections>, actor: AuditActor): Promise<ReportView> {
    const state = this.writable(caseId)
    const doc = await this.open(caseId)
    if (finalOf(doc, new Set(editorsOf(state))) !== undefined) throw new CaseError('RADMESH_REPORT_FINAL', `the report of case ${caseId} is FINAL; it cannot change (write an addendum)`)
    for (const [name, text] of Object.entries(sections)) {
      if (!(SECTION_NAMES as readonly string[]).includes(name)) throw new CaseError('RADMESH_NOT_ALLOWED', `"${name}" is not a report section (${SECTION_NAMES.join(', ')})`)
      if (typeof text !== 'string' || text.length > MAX_SECTION_CHARS) throw new CaseError('RADMESH_NOT_ALLOWED', `section ${name} must be text of at most ${MAX_SECTION_CHARS} characters`)
    }
    const binding = await this.bindingIfNeeded(caseId, doc)
    await this.options.documents.change(reportDocId(caseId), () => {
      // Merged here, in the transaction, so no peer's update lands between reading a section and writing it.
      const texts = new Map<SectionName, string>()
      for (const [name, text] of Object.entries(sections) as Array<[SectionName, string]>) {
        const from = base[name]
        const current = doc.getText(name).toString()
        const merged = from === undefined ? text : mergeEdit(from, text, current)
        if (merged === undefined) throw new CaseError('RADMESH_REPORT_CHANGED', `section ${name} of case ${caseId} was changed since the text this edit started from, where this edit changes it; nothing was written. It now reads: ${JSON.stringify(current)}`)
        if (merged.length > MAX_SECTION_CHARS) throw new CaseError('RADMESH_NOT_ALLOWED', `section ${name} would be longer than ${MAX_SECTION_CHARS} characters`)
        texts.set(name, merged)
      }
      if (binding !== undefined) doc.getMap(EDITORS_MAP).set(String(binding.clientId), binding)
      for (const [name, text] of texts) replaceText(doc.getText(name), text)
    })
    await this.audited(state, 'U', actor, `edited ${Object.keys(sections).join(', ')}`)
    return await this.view(caseId)
  }

  /**
   * Signs the report as it stands. PRELIMINARY: the holder or a consultant. FINAL: the holder; it completes
   * the case. Sites never sign.
   */
  async sign (caseId: string, status: 'PRELIMINARY' | 'FINAL', actor: AuditActor): Promise<ReportView> {
    const state = this.writable(caseId)
    const me = this.options.identity.peerId
    if (status === 'FINAL' && state.claimedBy !== me) throw new CaseError('RADMESH_NOT_ALLOWED', `only the reader holding case ${caseId} signs it FINAL; a consultant signs PRELIMINARY`)
    const doc = await this.open(caseId)
    if (finalOf(doc, new Set(editorsOf(state))) !== undefined) throw new CaseError('RADMESH_REPORT_FINAL', `the report of case ${caseId} is already FINAL; write an addendum`)
    const sections = sectionsOf(doc)
    if (status === 'FINAL' && sections.impression.trim() === '') throw new CaseError('RADMESH_NOT_ALLOWED', 'a FINAL report needs an impression')
    const at = new Date().toISOString()
    await this.addSignature(caseId, doc, { v: 1, kind: 'report-signature', caseId, studyUid: state.studyUid, status, sections, text: '', by: me as PeerIdString, at })
    await this.options.worklist.recordSignature(caseId, status, reportHash(caseId, state.studyUid, sections), at)
    await this.audited(state, 'U', actor, `signed ${status}`)
    return await this.view(caseId)
  }

  /** An addendum to a FINAL report, by one of its readers. */
  async addendum (caseId: string, text: string, actor: AuditActor): Promise<ReportView> {
    const state = this.readable(caseId)
    const me = this.options.identity.peerId
    if (!editorsOf(state).includes(me)) throw new CaseError('RADMESH_NOT_ALLOWED', `only the readers of case ${caseId} can add an addendum`)
    if (text.trim() === '' || text.length > MAX_SECTION_CHARS) throw new CaseError('RADMESH_NOT_ALLOWED', `an addendum is 1 to ${MAX_SECTION_CHARS} characters of text`)
    const doc = await this.open(caseId)
    if (finalOf(doc, new Set(editorsOf(state))) === undefined) throw new CaseError('RADMESH_NOT_ALLOWED', `the report of case ${caseId} is not FINAL yet; edit it instead`)
    const empty = Object.fromEntries(SECTION_NAMES.map(name => [name, ''])) as Sections
    const at = new Date().toISOString()
    await this.addSignature(caseId, doc, { v: 1, kind: 'report-signature', caseId, studyUid: state.studyUid, status: 'ADDENDUM', sections: empty, text, by: me as PeerIdString, at })
    await this.options.worklist.recordSignature(caseId, 'ADDENDUM', reportHash(caseId, state.studyUid, { ...empty, findings: text }), at)
    await this.audited(state, 'U', actor, 'addendum')
    return await this.view(caseId)
  }

  private async addSignature (caseId: string, doc: Y.Doc, record: Omit<ReportSignatureRecord, 'signature'>): Promise<void> {
    const signed = await signReportRecord(this.options.identity.privateKey, record)
    const binding = await this.bindingIfNeeded(caseId, doc)
    await this.options.documents.change(reportDocId(caseId), () => {
      if (binding !== undefined) doc.getMap(EDITORS_MAP).set(String(binding.clientId), binding)
      doc.getMap(SIGNATURES_MAP).set(recordKey(signed), signed)
    })
  }

  // Checking what peers send

  /** Throws UpdateRefusedError unless the update is one the rules in the file comment allow. */
  async checkUpdate (caseId: string, update: Uint8Array, inspected: InspectedUpdate): Promise<void> {
    const state = this.options.worklist.caseState(caseId)
    if (state === undefined) throw new UpdateRefusedError(`case ${caseId} is not on this node's worklist yet`, 0)
    if (inspected.otherStructs > 0) throw new UpdateRefusedError('the update holds garbage-collected structs, which a report never has', 5)
    const editors = new Set(editorsOf(state))
    const doc = await this.open(caseId)

    const trial = new Y.Doc({ gc: false })
    declareRoots(trial)
    Y.applyUpdate(trial, Y.encodeStateAsUpdate(doc))
    const before = new Map([...trial.store.clients.keys()].map(client => [client, Y.getState(trial.store, client)]))
    const finalBefore = finalOf(trial, editors)
    const sectionsBefore = sectionsOf(trial)
    const editorsBefore = new Map(trial.getMap<BindingRecord>(EDITORS_MAP).entries())
    const signaturesBefore = new Map(trial.getMap<ReportSignatureRecord>(SIGNATURES_MAP).entries())
    Y.applyUpdate(trial, update)
    if (trial.store.pendingStructs !== null || trial.store.pendingDs !== null) throw new UpdateRefusedError('the update builds on report updates this node does not have yet', 0)

    const roots = new Map<unknown, string>([...trial.share].map(([name, type]) => [type, name]))
    const bindings = trial.getMap<unknown>(EDITORS_MAP)
    const newRecords: Array<{ root: string, key: string, client: number }> = []
    for (const [client, structs] of trial.store.clients) {
      const from = before.get(client) ?? 0
      if (Y.getState(trial.store, client) <= from) continue
      for (let i = Y.findIndexSS(structs, from); i < structs.length; i++) {
        const item = structs[i]
        if (!(item instanceof Y.Item)) throw new UpdateRefusedError('the update holds garbage-collected structs, which a report never has', 5)
        const root = roots.get(item.parent)
        if (root === undefined) throw new UpdateRefusedError('the update nests types in a report, which holds only its sections and two maps', 5)
        if ((SECTION_NAMES as readonly string[]).includes(root)) {
          if (item.parentSub !== null || !(item.content instanceof Y.ContentString || item.content instanceof Y.ContentDeleted)) throw new UpdateRefusedError(`the update puts something other than text in section ${root}`, 5)
          if (finalBefore !== undefined) throw new UpdateRefusedError(`the update changes section ${root} of a FINAL report`, 2, 'RADMESH_REPORT_FINAL')
          const binding = bindings.get(String(client)) as BindingRecord | undefined
          if (binding === undefined) throw new UpdateRefusedError(`section text from Yjs client ${client}, which no reader of the case has bound`, 5)
          if (!editors.has(binding.by)) throw new UpdateRefusedError(`section text by ${binding.by}, who is not a reader of case ${caseId} (yet)`, 0)
        } else if (root === EDITORS_MAP || root === SIGNATURES_MAP) {
          if (item.parentSub === null || !(item.content instanceof Y.ContentAny) || item.content.arr.length !== 1) throw new UpdateRefusedError(`the update writes ${root} other than as one record per key`, 5)
          if ((root === EDITORS_MAP ? editorsBefore : signaturesBefore).has(item.parentSub)) throw new UpdateRefusedError(`the update overwrites ${root} entry ${item.parentSub}`, 5)
          if (!item.deleted) newRecords.push({ root, key: item.parentSub, client })
        } else {
          throw new UpdateRefusedError(`the update writes "${root.slice(0, 40)}", which is not part of a report`, 5)
        }
      }
    }
    for (const { root, key, client } of newRecords) {
      const value = trial.getMap(root).get(key)
      let record: ReportRecord
      try {
        record = await verifiedReportRecord(key, value)
      } catch (error) {
        throw new UpdateRefusedError((error as Error).message, 5)
      }
      if (record.caseId !== caseId) throw new UpdateRefusedError(`a ${record.kind} record of case ${record.caseId} in the report of ${caseId}`, 5)
      if (!editors.has(record.by)) {
        throw new UpdateRefusedError(`a ${record.kind} record by ${record.by}, who is not a reader of case ${caseId}${record.by === state.site ? ' (a site never signs or writes a report)' : ''}`, record.by === state.site ? 5 : 0)
      }
      if (record.kind === 'binding') {
        if (record.clientId !== client) throw new UpdateRefusedError(`binding of client ${record.clientId} written by client ${client}`, 5)
      } else {
        const author = bindings.get(String(client)) as BindingRecord | undefined
        if (author?.by !== record.by) throw new UpdateRefusedError(`a signature by ${record.by} written by another member's client: signing as someone else`, 10)
        if (record.studyUid !== state.studyUid) throw new UpdateRefusedError(`a signature for study ${record.studyUid}, not the case's study`, 5)
        this.verified.add(key)
      }
    }
    for (const [map, entries] of [[EDITORS_MAP, editorsBefore], [SIGNATURES_MAP, signaturesBefore]] as const) {
      for (const key of entries.keys()) {
        if (!trial.getMap(map).has(key)) throw new UpdateRefusedError(`the update deletes ${map} entry ${key}`, 5)
      }
    }
    if (finalBefore !== undefined) {
      const after = sectionsOf(trial)
      for (const name of SECTION_NAMES) {
        if (after[name] !== sectionsBefore[name]) throw new UpdateRefusedError(`the update changes section ${name} of a FINAL report`, 2, 'RADMESH_REPORT_FINAL')
      }
    }
    for (const name of SECTION_NAMES) {
      if (trial.getText(name).length > MAX_SECTION_CHARS) throw new UpdateRefusedError(`section ${name} would be longer than ${MAX_SECTION_CHARS} characters`, 1)
    }
    trial.destroy()
  }
}

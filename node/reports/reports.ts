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
import type { Logger } from 'pino'
import type * as Y from 'yjs'
import {
  type BindingRecord,
  EDITORS_MAP,
  MAX_SECTION_CHARS,
  recordKey,
  type ReportSignatureRecord,
  SECTION_NAMES,
  type SectionName,
  type Sections,
  SIGNATURES_MAP
} from '../../protocol/collab/records.ts'
import { reportDocId } from '../../protocol/collab/sync.ts'
import type { ReportView } from '../../protocol/api/reports.ts'
import type { PeerIdString } from '../../protocol/ids.ts'
import type { AuditActor, AuditLog } from '../audit/log.ts'
import type { Documents } from '../crdt/documents.ts'
import { type InspectedUpdate, UpdateRefusedError } from '../crdt/inspect.ts'
import { mergeEdit } from '../crdt/text-merge.ts'
import { CaseError } from '../errors.ts'
import type { Identity } from '../identity/keys.ts'
import { type CaseSource, editorsOf, type ReportCase } from './case.ts'
import { checkReportUpdate } from './check.ts'
import { declareRoots, finalOf, replaceText, reportHash, sectionsOf, signaturesOf } from './document.ts'
import { signReportRecord, verifiedReportRecord } from './records.ts'

export { REPORT_STATUSES, type ReportStatus, type ReportView } from '../../protocol/api/reports.ts'

export interface ReportsOptions {
  documents: Documents
  identity: Identity
  /** the cases (node/worklist/ provides them) */
  worklist: CaseSource
  /** every read and change of a report is recorded (110110 Patient Record), whoever asks */
  audit: Pick<AuditLog, 'append'>
  log: Logger
}

export class Reports {
  private readonly options: ReportsOptions
  /** signature record keys whose Ed25519 signature was checked */
  private readonly verified = new Set<string>()

  constructor(options: ReportsOptions) {
    this.options = options
  }

  /** Who holds a case's report: its site and its readers. */
  participants(state: ReportCase): string[] {
    return [...new Set([state.site, ...editorsOf(state)])]
  }

  isParticipant(state: ReportCase, peerId: string): boolean {
    return this.participants(state).includes(peerId)
  }

  /** The case, if this node may read its report; throws CaseError otherwise. */
  readable(caseId: string): ReportCase {
    const state = this.options.worklist.requireCase(caseId)
    if (!this.isParticipant(state, this.options.identity.peerId)) {
      throw new CaseError(
        'RADMESH_NOT_ALLOWED',
        `this node is not on case ${caseId}: only its site, the readers who claimed it and invited consultants hold ` +
          `its report`
      )
    }
    return state
  }

  /**
   * Opens the reports of the live cases this node is on that have one stored (at start): a report open here
   * is in the digests that keep it in step with the case's other readers (sync.ts).
   */
  async openLive(): Promise<void> {
    const me = this.options.identity.peerId
    for (const state of this.options.worklist.liveCases()) {
      if (state.claimers.length === 0 || !this.isParticipant(state, me)) continue
      if (await this.options.documents.exists(reportDocId(state.caseId))) await this.open(state.caseId)
    }
  }

  async open(caseId: string): Promise<Y.Doc> {
    const doc = await this.options.documents.open(reportDocId(caseId))
    declareRoots(doc)
    return doc
  }

  async view(caseId: string): Promise<ReportView> {
    const state = this.readable(caseId)
    const doc = await this.open(caseId)
    const editors = new Set(editorsOf(state))
    const signatures = signaturesOf(doc).filter(r => editors.has(r.by))
    const final = signatures.find(r => r.status === 'FINAL')
    const addenda = final === undefined ? [] : signatures.filter(r => r.status === 'ADDENDUM')
    const preliminary = signatures.some(r => r.status === 'PRELIMINARY')
    // In the order they first wrote (a Y.Map's own order differs between nodes), so every node shows the same list.
    const bindings = [...doc.getMap<BindingRecord>(EDITORS_MAP).values()].sort((a, b) =>
      a.at < b.at ? -1 : a.at > b.at ? 1 : a.by < b.by ? -1 : a.by > b.by ? 1 : 0
    )
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
  async read(caseId: string, actor: AuditActor, detail = 'read'): Promise<ReportView> {
    const view = await this.view(caseId)
    await this.audited(this.readable(caseId), 'R', actor, detail)
    return view
  }

  /** Records a read ('R') or change ('U') of a case's report in the audit trail (110110 Patient Record). */
  async audited(state: ReportCase, action: 'R' | 'U', actor: AuditActor, detail: string): Promise<void> {
    const entry = { event: 'patientRecord', action, outcome: 0, actor, study: state.studyUid } as const
    await this.options.audit.append({ ...entry, detail: `report of case ${state.caseId}: ${detail}` })
  }

  /** The FINAL signature record of a case's report, if there is one (for delivery to the site). */
  async finalSignature(
    caseId: string
  ): Promise<{ final: ReportSignatureRecord; addenda: ReportSignatureRecord[] } | undefined> {
    const state = this.readable(caseId)
    const doc = await this.open(caseId)
    const editors = new Set(editorsOf(state))
    const final = finalOf(doc, editors)
    if (final === undefined) return undefined
    return { final, addenda: signaturesOf(doc).filter(r => r.status === 'ADDENDUM' && editors.has(r.by)) }
  }

  private async verify(record: ReportSignatureRecord): Promise<boolean> {
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
  private writable(caseId: string): ReportCase {
    const state = this.readable(caseId)
    const me = this.options.identity.peerId
    if (state.claimedBy !== me && !state.consultants.includes(me)) {
      throw new CaseError(
        'RADMESH_NOT_ALLOWED',
        state.site === me
          ? `a site cannot write or sign reports; case ${caseId} is read by its readers`
          : `only the reader holding case ${caseId} and its consultants can write its report; claim it first`
      )
    }
    return state
  }

  /** A binding for this node's Yjs client in the report, made once per client (signed before the transaction). */
  private async bindingIfNeeded(caseId: string, doc: Y.Doc): Promise<BindingRecord | undefined> {
    if (doc.getMap(EDITORS_MAP).has(String(doc.clientID))) return undefined
    return await signReportRecord(this.options.identity.privateKey, {
      v: 1,
      kind: 'binding',
      caseId,
      clientId: doc.clientID,
      by: this.options.identity.peerId,
      at: new Date().toISOString()
    })
  }

  /**
   * A binding of a viewer's Yjs client to this node's member, for the viewer to write into the report itself
   * (a binding must be written by the client it binds). Only a reader of the case gets one.
   */
  async viewerBinding(caseId: string, clientId: number): Promise<BindingRecord> {
    this.writable(caseId)
    if (!Number.isSafeInteger(clientId) || clientId < 0 || clientId > 0xffffffff) {
      throw new CaseError('RADMESH_NOT_ALLOWED', 'a Yjs client id is an integer from 0 to 2^32 - 1')
    }
    const doc = await this.open(caseId)
    const existing = doc.getMap<BindingRecord>(EDITORS_MAP).get(String(clientId))
    if (existing !== undefined && existing.by !== this.options.identity.peerId) {
      throw new CaseError(
        'RADMESH_NOT_ALLOWED',
        `Yjs client ${clientId} is bound to another member; open the report again`
      )
    }
    return (
      existing ??
      (await signReportRecord(this.options.identity.privateKey, {
        v: 1,
        kind: 'binding',
        caseId,
        clientId,
        by: this.options.identity.peerId,
        at: new Date().toISOString()
      }))
    )
  }

  /**
   * Replaces the given sections, as one edit; durable before it resolves. With a `base` for a section (the
   * text the writer started from), only the writer's change from it is made, so what others wrote since is
   * kept; if their change meets it, nothing is written and RADMESH_REPORT_CHANGED says so.
   */
  async edit(
    caseId: string,
    sections: Partial<Sections>,
    base: Partial<Sections>,
    actor: AuditActor
  ): Promise<ReportView> {
    const state = this.writable(caseId)
    const doc = await this.open(caseId)
    if (finalOf(doc, new Set(editorsOf(state))) !== undefined) {
      throw new CaseError(
        'RADMESH_REPORT_FINAL',
        `the report of case ${caseId} is FINAL; it cannot change (write an addendum)`
      )
    }
    for (const [name, text] of Object.entries(sections)) {
      if (!(SECTION_NAMES as readonly string[]).includes(name)) {
        throw new CaseError('RADMESH_NOT_ALLOWED', `"${name}" is not a report section (${SECTION_NAMES.join(', ')})`)
      }
      if (typeof text !== 'string' || text.length > MAX_SECTION_CHARS) {
        throw new CaseError(
          'RADMESH_NOT_ALLOWED',
          `section ${name} must be text of at most ${MAX_SECTION_CHARS} characters`
        )
      }
    }
    const binding = await this.bindingIfNeeded(caseId, doc)
    await this.options.documents.change(reportDocId(caseId), () => {
      // Merged here, in the transaction, so no peer's update lands between reading a section and writing it.
      const texts = new Map<SectionName, string>()
      for (const [name, text] of Object.entries(sections) as Array<[SectionName, string]>) {
        const from = base[name]
        const current = doc.getText(name).toString()
        const merged = from === undefined ? text : mergeEdit(from, text, current)
        if (merged === undefined) {
          throw new CaseError(
            'RADMESH_REPORT_CHANGED',
            `section ${name} of case ${caseId} was changed since the text this edit started from, where this edit ` +
              `changes it; nothing was written. It now reads: ${JSON.stringify(current)}`
          )
        }
        if (merged.length > MAX_SECTION_CHARS) {
          throw new CaseError(
            'RADMESH_NOT_ALLOWED',
            `section ${name} would be longer than ${MAX_SECTION_CHARS} characters`
          )
        }
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
  async sign(caseId: string, status: 'PRELIMINARY' | 'FINAL', actor: AuditActor): Promise<ReportView> {
    const state = this.writable(caseId)
    const me = this.options.identity.peerId
    if (status === 'FINAL' && state.claimedBy !== me) {
      throw new CaseError(
        'RADMESH_NOT_ALLOWED',
        `only the reader holding case ${caseId} signs it FINAL; a consultant signs PRELIMINARY`
      )
    }
    const doc = await this.open(caseId)
    if (finalOf(doc, new Set(editorsOf(state))) !== undefined) {
      throw new CaseError('RADMESH_REPORT_FINAL', `the report of case ${caseId} is already FINAL; write an addendum`)
    }
    const sections = sectionsOf(doc)
    if (status === 'FINAL' && sections.impression.trim() === '') {
      throw new CaseError('RADMESH_NOT_ALLOWED', 'a FINAL report needs an impression')
    }
    const at = new Date().toISOString()
    await this.addSignature(caseId, doc, {
      v: 1,
      kind: 'report-signature',
      caseId,
      studyUid: state.studyUid,
      status,
      sections,
      text: '',
      by: me as PeerIdString,
      at
    })
    await this.options.worklist.recordSignature(caseId, status, reportHash(caseId, state.studyUid, sections), at)
    await this.audited(state, 'U', actor, `signed ${status}`)
    return await this.view(caseId)
  }

  /** An addendum to a FINAL report, by one of its readers. */
  async addendum(caseId: string, text: string, actor: AuditActor): Promise<ReportView> {
    const state = this.readable(caseId)
    const me = this.options.identity.peerId
    if (!editorsOf(state).includes(me)) {
      throw new CaseError('RADMESH_NOT_ALLOWED', `only the readers of case ${caseId} can add an addendum`)
    }
    if (text.trim() === '' || text.length > MAX_SECTION_CHARS) {
      throw new CaseError('RADMESH_NOT_ALLOWED', `an addendum is 1 to ${MAX_SECTION_CHARS} characters of text`)
    }
    const doc = await this.open(caseId)
    if (finalOf(doc, new Set(editorsOf(state))) === undefined) {
      throw new CaseError('RADMESH_NOT_ALLOWED', `the report of case ${caseId} is not FINAL yet; edit it instead`)
    }
    const empty = Object.fromEntries(SECTION_NAMES.map(name => [name, ''])) as Sections
    const at = new Date().toISOString()
    await this.addSignature(caseId, doc, {
      v: 1,
      kind: 'report-signature',
      caseId,
      studyUid: state.studyUid,
      status: 'ADDENDUM',
      sections: empty,
      text,
      by: me as PeerIdString,
      at
    })
    await this.options.worklist.recordSignature(
      caseId,
      'ADDENDUM',
      reportHash(caseId, state.studyUid, { ...empty, findings: text }),
      at
    )
    await this.audited(state, 'U', actor, 'addendum')
    return await this.view(caseId)
  }

  private async addSignature(
    caseId: string,
    doc: Y.Doc,
    record: Omit<ReportSignatureRecord, 'signature'>
  ): Promise<void> {
    const signed = await signReportRecord(this.options.identity.privateKey, record)
    const binding = await this.bindingIfNeeded(caseId, doc)
    await this.options.documents.change(reportDocId(caseId), () => {
      if (binding !== undefined) doc.getMap(EDITORS_MAP).set(String(binding.clientId), binding)
      doc.getMap(SIGNATURES_MAP).set(recordKey(signed), signed)
    })
  }

  // Checking what peers send

  /** Throws UpdateRefusedError unless the update is one the rules in the file comment allow. */
  async checkUpdate(caseId: string, update: Uint8Array, inspected: InspectedUpdate): Promise<void> {
    const state = this.options.worklist.caseState(caseId)
    if (state === undefined) throw new UpdateRefusedError(`case ${caseId} is not on this node's worklist yet`, 0)
    if (inspected.otherStructs > 0) {
      throw new UpdateRefusedError('the update holds garbage-collected structs, which a report never has', 5)
    }
    await checkReportUpdate(state, await this.open(caseId), update, this.verified)
  }
}

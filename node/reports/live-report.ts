/**
 * The viewer's live report: the browser is a Yjs client of a case's report document, bound to this node's
 * member, and this node is its only peer. A subscriber gets the whole document, then every update and the
 * other readers' awareness; a change it sends passes the same checks as a peer's (reports.ts), is applied as
 * this member's own, and is refused with the code a writer can act on (RADMESH_REPORT_FINAL when the report
 * is FINAL, RADMESH_NOT_ALLOWED otherwise). Opening the report and each change are audited (110110).
 */
import * as Y from 'yjs'
import type { BindingRecord } from '../../protocol/collab/records.ts'
import { reportDocId } from '../../protocol/collab/sync.ts'
import type { AuditActor } from '../audit/log.ts'
import { BadRequestError, CaseError } from '../errors.ts'
import type { Documents } from '../crdt/documents.ts'
import { UpdateRefusedError } from '../crdt/inspect.ts'
import type { Presence } from '../crdt/presence.ts'
import type { SyncService } from '../crdt/sync.ts'
import type { CaseSource } from './case.ts'
import type { Reports, ReportView } from './reports.ts'

export interface LiveReportComponents {
  reports: Pick<Reports, 'readable' | 'open' | 'view' | 'audited' | 'viewerBinding'>
  worklist: Pick<CaseSource, 'requireCase'>
  documents: Pick<Documents, 'onUpdate'>
  presence: Pick<Presence, 'apply' | 'snapshot' | 'onUpdate'>
  sync: Pick<SyncService, 'applyFromViewer'>
}

/** What a subscriber is sent after the whole document: each update, and each awareness update of the others. */
export interface LiveReportListener {
  update(update: Uint8Array): void
  awareness(update: Uint8Array): void
}

export interface LiveReportSubscription {
  /** the whole document as one Yjs update */
  state: Uint8Array
  /** the other readers' awareness now, when there are any */
  awareness: Uint8Array | undefined
  unsubscribe(): void
}

export class LiveReports {
  private readonly c: LiveReportComponents

  constructor(components: LiveReportComponents) {
    this.c = components
  }

  /** A binding of the viewer's Yjs client to this node's member (see Reports.viewerBinding). */
  async binding(caseId: string, clientId: number): Promise<BindingRecord> {
    return await this.c.reports.viewerBinding(caseId, clientId)
  }

  async view(caseId: string): Promise<ReportView> {
    return await this.c.reports.view(caseId)
  }

  /** Opens the report for `actor` (audited) and sends `listener` what changes from now on. */
  async subscribe(caseId: string, actor: AuditActor, listener: LiveReportListener): Promise<LiveReportSubscription> {
    const state = this.c.reports.readable(caseId)
    const docId = reportDocId(caseId)
    const doc = await this.c.reports.open(caseId)
    await this.c.reports.audited(state, 'R', actor, 'opened live')
    const unsubscribeDoc = this.c.documents.onUpdate((changed, update) => {
      if (changed === docId) listener.update(update)
    })
    const unsubscribePresence = this.c.presence.onUpdate((changed, update) => {
      if (changed === docId) listener.awareness(update)
    })
    return {
      state: Y.encodeStateAsUpdate(doc),
      awareness: this.c.presence.snapshot(docId),
      unsubscribe: () => {
        unsubscribeDoc()
        unsubscribePresence()
      }
    }
  }

  /** Applies one Yjs update from the viewer as this member's change (durable once it resolves), audited. */
  async apply(caseId: string, update: Uint8Array, actor: AuditActor): Promise<void> {
    try {
      await this.c.sync.applyFromViewer(reportDocId(caseId), update)
    } catch (error) {
      if (!(error instanceof UpdateRefusedError)) throw error
      throw new CaseError(error.code, `the report change was refused: ${error.message}`)
    }
    await this.c.reports.audited(this.c.worklist.requireCase(caseId), 'U', actor, 'edited in the viewer')
  }

  /** The viewer's name and cursor (a y-protocols awareness update), for the other readers. */
  async presence(caseId: string, update: Uint8Array): Promise<void> {
    this.c.reports.readable(caseId)
    try {
      await this.c.presence.apply(reportDocId(caseId), update, { kind: 'viewer' })
    } catch (error) {
      if (error instanceof UpdateRefusedError) throw new BadRequestError(`presence refused: ${error.message}`)
      throw error
    }
  }
}

/**
 * Second opinions coming back: a de-identified copy's case (workflow.ts publishes it for the members the copy was
 * shared with) is read like any case, and once its report is FINAL the site that made the copy joins that report
 * to the original case through the sealed mapping (node/deid/mappings.ts). Nothing is written into the original
 * case's records or report: the link would then travel to the original's readers in the clear, and a second
 * opinion must never stand in for the primary reader's report. The site's node opens the copy's report (so it
 * syncs here), audits each version's arrival against the original study once (the version is kept in the sealed
 * mapping, so a restart does not audit it again), and answers the original case's second
 * opinions from the mapping and the copy's signed report on demand, the patient's identity being the original
 * case's own. The copy's report goes to no RIS and into no archive: it is no patient's study in the site's
 * systems (delivery.ts leaves it alone); the primary reader can cite it in an addendum, which does.
 */
import type { Logger } from 'pino'
import type { SecondOpinion } from '../../protocol/api/second-opinions.ts'
import type { AuditLog } from '../audit/log.ts'
import type { Documents } from '../crdt/documents.ts'
import type { DeidMappings } from '../deid/mappings.ts'
import { ReportWatch } from '../reports/report-watch.ts'
import type { Reports } from '../reports/reports.ts'
import type { CaseState } from '../worklist/cases.ts'
import type { Worklist } from '../worklist/worklist.ts'
import { caseIdFor } from './workflow.ts'

export interface SecondOpinionsOptions {
  peerId: string
  mappings: Pick<DeidMappings, 'get' | 'copiesOf' | 'keep'>
  reports: Pick<Reports, 'finalSignature'>
  worklist: Pick<Worklist, 'caseState' | 'ensureCase' | 'requireCase' | 'nameOf' | 'onChange' | 'allCases'>
  documents: Pick<Documents, 'onUpdate'>
  audit: Pick<AuditLog, 'append'>
  log: Logger
}

export class SecondOpinions {
  private readonly o: SecondOpinionsOptions
  /** the version (FINAL signature and number of addenda) last joined to its original, per copy case */
  private readonly joined = new Map<string, string>()
  /** copy case -> original case, for this site's second-opinion cases it has looked at */
  private readonly originals = new Map<string, string>()
  private readonly watch: ReportWatch

  constructor(options: SecondOpinionsOptions) {
    this.o = options
    this.watch = new ReportWatch({
      documents: options.documents,
      worklist: options.worklist,
      kinds: ['signed', 'case'],
      wants: caseId => {
        const state = options.worklist.caseState(caseId)
        return state?.site === options.peerId && state.purpose === 'second-opinion'
      },
      work: async caseId => await this.join(caseId),
      failure: 'could not join a second opinion to its original case',
      log: options.log
    })
  }

  start(): void {
    this.watch.start()
    // Open the reports of this site's second-opinion cases, so those signed while it was away sync here.
    for (const state of this.o.worklist.allCases()) this.watch.touch(state.caseId)
  }

  stop(): void {
    this.watch.stop()
  }

  async settled(): Promise<void> {
    await this.watch.settled()
  }

  /** The original case of this site's second-opinion case `copyCaseId`, once known (a critical result names it). */
  originalCaseOf(copyCaseId: string): string | undefined {
    return this.originals.get(copyCaseId)
  }

  /** The second opinions asked for on `caseId`'s study by this site, oldest first; none on another node. */
  async ofCase(caseId: string): Promise<SecondOpinion[]> {
    const { worklist, mappings, peerId } = this.o
    const original = worklist.requireCase(caseId)
    if (original.site !== peerId) return []
    const opinions: SecondOpinion[] = []
    for (const mapping of await mappings.copiesOf(original.studyUid)) {
      const copyCaseId = caseIdFor(peerId, mapping.copyStudyUid)
      const copy = await worklist.ensureCase(copyCaseId)
      opinions.push({
        copyCaseId,
        copyStudyInstanceUid: mapping.copyStudyUid,
        madeAt: mapping.madeAt,
        sharedWith: (mapping.sharedWith ?? []).map(peer => ({ peerId: peer, name: worklist.nameOf(peer) })),
        status: copy?.status ?? null,
        report: copy === undefined ? null : await this.report(copy)
      })
    }
    return opinions
  }

  private async report(copy: CaseState): Promise<SecondOpinion['report']> {
    if (copy.finalAt === null) return null
    const signed = await this.o.reports.finalSignature(copy.caseId)
    if (signed === undefined) return null
    const { final, addenda } = signed
    return {
      status: addenda.length > 0 ? 'AMENDED' : 'FINAL',
      sections: final.sections,
      signedBy: final.by,
      signedByName: this.o.worklist.nameOf(final.by),
      signedAt: final.at,
      addenda: addenda.map(addendum => ({
        text: addendum.text,
        name: this.o.worklist.nameOf(addendum.by),
        at: addendum.at
      }))
    }
  }

  /** Opens the copy's report; once FINAL (or amended), audits its arrival against the original study, once. */
  private async join(copyCaseId: string): Promise<void> {
    const { worklist, mappings, reports, audit, log, peerId } = this.o
    const copy = worklist.requireCase(copyCaseId)
    const mapping = await mappings.get(copy.studyUid)
    if (mapping === undefined) {
      log.warn(
        { event: 'second-opinion-unmapped', case: copyCaseId },
        `second-opinion case ${copyCaseId} has no mapping back at this site; its report stays with the copy`
      )
      return
    }
    const originalCaseId = caseIdFor(peerId, mapping.originalStudyUid)
    this.originals.set(copyCaseId, originalCaseId)
    const signed = await reports.finalSignature(copyCaseId)
    if (signed === undefined) return
    const version = `${signed.final.signature}:${signed.addenda.length}`
    if (this.joined.get(copyCaseId) === version || mapping.returned === version) {
      this.joined.set(copyCaseId, version)
      return
    }
    const by = signed.addenda.at(-1)?.by ?? signed.final.by
    await audit.append({
      event: 'patientRecord',
      action: 'C',
      outcome: 0,
      actor: { type: 'peer', id: by },
      study: mapping.originalStudyUid,
      detail:
        `case ${originalCaseId}: second opinion ${signed.addenda.length === 0 ? 'FINAL' : 'amended'} by ` +
        `${worklist.nameOf(by)} on de-identified copy ${mapping.copyStudyUid} (case ${copyCaseId})`
    })
    await mappings.keep({ ...mapping, returned: version })
    this.joined.set(copyCaseId, version)
    log.info(
      { event: 'second-opinion-returned', case: originalCaseId, copyCase: copyCaseId, by },
      `a second opinion by ${worklist.nameOf(by)} came back to case ${originalCaseId}`
    )
  }
}

/**
 * Delivery of signed reports to the site's systems. When a case's report becomes FINAL (or gets an
 * addendum), the site's node writes it as a DICOM Basic Text SR into its own archive, in the read study, so
 * QIDO-RS/WADO-RS and a PACS that queries the node see it; and it serves the report as a FHIR R4
 * DiagnosticReport. SR UIDs derive from the case (and the number of addenda), so delivering again stores
 * nothing new. With a RIS configured, each version also goes into the HL7 outbox as an ORU^R01 (hl7/), once.
 * A second opinion on a de-identified copy is none of this: the copy is no patient's study in the site's
 * systems; its report goes back to the original case instead (node/workflow/second-opinions.ts).
 */
import { createHash } from 'node:crypto'
import type { Logger } from 'pino'
import type { ReportSignatureRecord } from '../../protocol/collab/records.ts'
import type { Archive } from '../archive/archive.ts'
import type { AuditActor } from '../audit/log.ts'
import { CaseError } from '../errors.ts'
import type { Identity } from '../identity/keys.ts'
import type { Documents } from '../crdt/documents.ts'
import type { CaseSource } from './case.ts'
import { comparedPriors } from './compared.ts'
import { diagnosticReport } from './fhir.ts'
import type { CriticalResult } from '../../protocol/api/critical.ts'
import { criticalControlId, criticalOru } from './hl7/critical.ts'
import { CONTROL_ID_LENGTH, oruR01 } from './hl7/oru.ts'
import { type OutboxEntry, outboxKey } from './hl7/outbox.ts'
import type { Hl7Sender } from './hl7/sender.ts'
import { ReportWatch } from './report-watch.ts'
import type { Reports } from './reports.ts'
import { BASIC_TEXT_SR, basicTextSr, type FinalReport, reportUid, type StudyForReport } from './sr.ts'

export interface DeliveryOptions {
  archive: Archive
  documents: Documents
  reports: Reports
  worklist: CaseSource
  identity: Identity
  log: Logger
  /** the site's RIS, when it has one (`--ris`, or `ris` in routing.json) */
  hl7?: Pick<Hl7Sender, 'enqueue'>
  /** the HL7 outbox, for the delivery status a case shows */
  outbox?: { ofCase: (caseId: string) => Promise<OutboxEntry[]> }
}

/** What a case shows of its report's (and critical results') HL7 messages to the RIS. */
export interface Hl7Status {
  controlId: string
  resultStatus: 'F' | 'C' | 'P'
  ris: string
  state: OutboxEntry['state']
  attempts: number
  createdAt: string
  nextAttemptAt: string
  lastError?: string
  ack?: { code: string; text: string; at: string }
}

export class ReportDelivery {
  private readonly o: DeliveryOptions
  /** what was last delivered per case: the FINAL signature and the number of addenda */
  private readonly delivered = new Map<string, string>()
  private readonly watch: ReportWatch

  constructor(options: DeliveryOptions) {
    this.o = options
    this.watch = new ReportWatch({
      documents: options.documents,
      worklist: options.worklist,
      kinds: ['signed'],
      wants: caseId => {
        const state = options.worklist.caseState(caseId)
        return state?.site === options.identity.peerId && state.purpose !== 'second-opinion'
      },
      work: async caseId => await this.deliver(caseId),
      failure: 'could not deliver a signed report into the archive',
      log: options.log
    })
  }

  start(): void {
    this.watch.start()
    for (const state of this.o.worklist.allCases()) if (state.finalAt !== null) this.watch.touch(state.caseId)
  }

  stop(): void {
    this.watch.stop()
  }

  async settled(): Promise<void> {
    await this.watch.settled()
  }

  /** Writes the report's SR into the archive, if it is FINAL and this version is not there yet. */
  async deliver(caseId: string): Promise<void> {
    const signed = await this.o.reports.finalSignature(caseId)
    if (signed === undefined) return
    const version = `${signed.final.signature}:${signed.addenda.length}`
    if (this.delivered.get(caseId) === version) return
    const { report, study } = await this.finalReport(caseId, signed)
    const sr = basicTextSr(report, study, {
      seriesInstanceUid: reportUid(caseId, 'series'),
      sopInstanceUid: reportUid(caseId, `instance-${signed.addenda.length}`),
      instanceNumber: 1 + signed.addenda.length,
      // An amended report names the SR it replaces.
      ...(signed.addenda.length === 0
        ? {}
        : {
            predecessor: {
              seriesInstanceUid: reportUid(caseId, 'series'),
              sopInstanceUid: reportUid(caseId, `instance-${signed.addenda.length - 1}`)
            }
          })
    })
    const { outcome } = await this.o.archive.store(sr, { type: 'peer', id: signed.final.by })
    if (this.o.hl7 !== undefined) {
      const addenda = signed.addenda.length
      // Fixed per report version, so a RIS sees a message sent again as the same one.
      const controlId = createHash('sha256')
        .update(`${caseId}:${addenda}`)
        .digest('hex')
        .slice(0, CONTROL_ID_LENGTH)
        .toUpperCase()
      const resultStatus = addenda === 0 ? 'F' : 'C'
      const message = oruR01(report, study, {
        controlId,
        sentAt: new Date().toISOString(),
        sendingFacility: report.institutionName,
        resultStatus
      })
      await this.o.hl7.enqueue({
        key: outboxKey(caseId, addenda),
        caseId,
        studyUid: study.studyInstanceUid,
        controlId,
        resultStatus,
        message
      })
    }
    this.delivered.set(caseId, version)
    this.o.log.info(
      { event: 'report-delivered', case: caseId, study: report.caseId, status: report.status, outcome },
      `the ${report.status} report of case ${caseId} is in the archive as a DICOM SR`
    )
  }

  /**
   * A critical result's raise (step 0) as an ORU^R01 to the RIS (hl7/critical.ts), once per result, through the
   * same outbox as the reports; nothing without a RIS. One flagged on a second opinion's copy goes as a result of
   * the original case (`originalCaseId`, known at the site only): the RIS knows no copy's patient.
   */
  async criticalNotice(critical: CriticalResult, step: number): Promise<void> {
    const { hl7, archive, worklist } = this.o
    if (hl7 === undefined || step !== 0) return
    const flaggedOn = worklist.requireCase(critical.caseId)
    if (flaggedOn.site !== this.o.identity.peerId) return
    const original = flaggedOn.purpose === 'second-opinion' ? critical.originalCaseId : flaggedOn.caseId
    if (original === undefined) return
    const state = worklist.requireCase(original)
    const record = await archive.study(state.studyUid)
    if (record === undefined) {
      throw new CaseError('RADMESH_NOT_FOUND', `study ${state.studyUid} of case ${state.caseId} is not in this archive`)
    }
    const study: StudyForReport = { studyInstanceUid: state.studyUid, attributes: record.attributes, instances: [] }
    await hl7.enqueue({
      key: `${state.caseId}:critical-${critical.id}`,
      caseId: state.caseId,
      studyUid: state.studyUid,
      controlId: criticalControlId(critical.id),
      resultStatus: 'P',
      message: criticalOru({ ...critical, caseId: state.caseId }, study, {
        sentAt: new Date().toISOString(),
        sendingFacility: state.siteName
      })
    })
  }

  /** The report's messages to the RIS, oldest first (none without a RIS). */
  async hl7Status(caseId: string): Promise<Hl7Status[]> {
    const entries = (await this.o.outbox?.ofCase(caseId)) ?? []
    return entries.map(
      ({ controlId, resultStatus, ris, state, attempts, createdAt, nextAttemptAt, lastError, ack }) => ({
        controlId,
        resultStatus,
        ris,
        state,
        attempts,
        createdAt,
        nextAttemptAt,
        ...(lastError === undefined ? {} : { lastError }),
        ...(ack === undefined ? {} : { ack })
      })
    )
  }

  /** The FINAL report as FHIR R4, the read audited; RADMESH_NOT_FOUND until it is FINAL. */
  async fhir(caseId: string, actor: AuditActor): Promise<Record<string, unknown>> {
    const signed = await this.o.reports.finalSignature(caseId)
    if (signed === undefined) {
      throw new CaseError(
        'RADMESH_NOT_FOUND',
        `the report of case ${caseId} is not FINAL yet; FHIR is served for FINAL reports`
      )
    }
    const { report, study } = await this.finalReport(caseId, signed)
    const resource = diagnosticReport(report, study, {
      srSopInstanceUid: reportUid(caseId, `instance-${signed.addenda.length}`)
    })
    await this.o.reports.audited(this.o.worklist.requireCase(caseId), 'R', actor, 'read as FHIR')
    return resource
  }

  private async finalReport(
    caseId: string,
    signed: { final: ReportSignatureRecord; addenda: ReportSignatureRecord[] }
  ): Promise<{ report: FinalReport; study: StudyForReport }> {
    const { archive, worklist } = this.o
    const state = worklist.requireCase(caseId)
    const record = await archive.study(state.studyUid)
    if (record === undefined) {
      throw new CaseError(
        'RADMESH_NOT_FOUND',
        `study ${state.studyUid} of case ${caseId} is not in this node's archive; fetch it first`
      )
    }
    const instances: StudyForReport['instances'] = []
    for await (const instance of archive.instancesOf(state.studyUid)) {
      if (instance.sopClassUid !== BASIC_TEXT_SR) {
        instances.push({
          seriesInstanceUid: instance.seriesUid,
          sopClassUid: instance.sopClassUid,
          sopInstanceUid: instance.sopUid
        })
      }
    }
    // The priors the COMPARISON section names, as held here (the site retrieved them from its PACS).
    const compared: StudyForReport[] = []
    for (const prior of comparedPriors(signed.final.sections.comparison, state.priors ?? [])) {
      const held = await archive.study(prior.studyUid)
      if (held === undefined) continue
      const priorInstances: StudyForReport['instances'] = []
      for await (const instance of archive.instancesOf(prior.studyUid)) {
        priorInstances.push({
          seriesInstanceUid: instance.seriesUid,
          sopClassUid: instance.sopClassUid,
          sopInstanceUid: instance.sopUid
        })
      }
      compared.push({ studyInstanceUid: prior.studyUid, attributes: held.attributes, instances: priorInstances })
    }
    return {
      study: { studyInstanceUid: state.studyUid, attributes: record.attributes, instances },
      report: {
        caseId,
        status: signed.addenda.length > 0 ? 'AMENDED' : 'FINAL',
        sections: signed.final.sections,
        signers: [
          {
            peerId: signed.final.by,
            name: worklist.nameOf(signed.final.by),
            status: 'FINAL',
            signedAt: signed.final.at
          }
        ],
        addenda: signed.addenda.map(addendum => ({
          text: addendum.text,
          signerName: worklist.nameOf(addendum.by),
          signedAt: addendum.at
        })),
        finalAt: signed.final.at,
        institutionName: state.siteName,
        ...(compared.length === 0 ? {} : { compared })
      }
    }
  }
}

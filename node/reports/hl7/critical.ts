/**
 * A critical result as HL7 v2.5.1, for the site's RIS beside its call list. HL7 v2 has no message of its own for
 * critical-result communication; the convention (and what RIS and EHR inboxes alert on) is a result message whose
 * observation carries an abnormal flag from table 0078. So: an ORU^R01 like the report's (oru.ts: the same MSH,
 * PID and order numbers), with
 *
 *   ORC  RE, placer and filler order numbers, IP (the order is still in process: the report may follow)
 *   OBR  result status P (preliminary: the FINAL report comes as its own ORU, F), the raise time, the reader as
 *        principal result interpreter
 *   OBX  one FT, code RADMESH-CRITICAL^Critical result^L (a local code), the level and text, abnormal flag
 *        (OBX-8) AA "very abnormal" for a critical result (table 0078's flag for a non-numeric result past panic
 *        limits), A "abnormal" for an urgent or unexpected one; status P
 *
 * One message per result, on its raise (escalations are about people on the call list, not about the result),
 * with a control id fixed per result so a RIS sees a message sent again as the same one.
 */
import { createHash } from 'node:crypto'
import type { CriticalResult } from '../../../protocol/api/critical.ts'
import type { StudyForReport } from '../sr.ts'
import {
  CONTROL_ID_LENGTH,
  escapeText,
  fields,
  first,
  header,
  hl7Time,
  orderNumbers,
  segment,
  studyTime,
  trimComponents
} from './oru.ts'

export const CRITICAL_CODE = 'RADMESH-CRITICAL^Critical result^L'
/** Table 0078 abnormal flags by level. */
export const ABNORMAL_FLAG: Record<CriticalResult['level'], string> = { critical: 'AA', urgent: 'A', unexpected: 'A' }

/** MSH-10 of a critical result's message: the same for every attempt, and unlike any report's. */
export const criticalControlId = (criticalId: string): string =>
  createHash('sha256').update(`critical:${criticalId}`).digest('hex').slice(0, CONTROL_ID_LENGTH).toUpperCase()

/** The ORU^R01 telling the RIS of `critical` on `study`, segments separated by CR (no MLLP framing). */
export function criticalOru(
  critical: CriticalResult,
  study: StudyForReport,
  o: { sentAt: string; sendingFacility: string }
): string {
  const { accession, placer, filler } = orderNumbers(study)
  const raised = hl7Time(critical.raisedAt)
  const reader = [escapeText(critical.by), escapeText(critical.byName ?? '')]
  return [
    ...header(study, {
      controlId: criticalControlId(critical.id),
      sentAt: o.sentAt,
      sendingFacility: o.sendingFacility,
      messageType: 'ORU^R01^ORU_R01'
    }),
    segment('ORC', fields({ 1: 'RE', 2: placer, 3: filler, 5: 'IP', 9: raised })),
    segment(
      'OBR',
      fields({
        1: '1',
        2: placer,
        3: filler,
        4: `^${escapeText(first(study, '00081030') || 'Imaging study')}`,
        7: studyTime(study),
        18: accession,
        20: escapeText(critical.caseId),
        22: raised,
        24: 'RAD',
        25: 'P',
        32: trimComponents(reader, '&')
      })
    ),
    segment(
      'OBX',
      fields({
        1: '1',
        2: 'FT',
        3: CRITICAL_CODE,
        5: escapeText(`${critical.level.toUpperCase()}: ${critical.text}`),
        8: ABNORMAL_FLAG[critical.level],
        11: 'P',
        14: raised,
        16: trimComponents(reader, '^')
      })
    )
  ].join('\r')
}

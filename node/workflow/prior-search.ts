/**
 * One search of the site's PACS for a case's priors, and the retrieve of one prior:
 *
 * 1. C-FIND at STUDY level (Study Root) by Patient ID, and Issuer of Patient ID when the case's study has one,
 *    over the rule's years up to the study's date: each study's UID, date, description, modalities, accession
 *    number and instance count.
 * 2. For the studies that pass the date and modality conditions, a C-FIND at SERIES level each for Body Part
 *    Examined (a series attribute: a PACS keeps none at study level), then the rule (worklist/prior-rule.ts).
 * 3. Each chosen study retrieved by C-GET on one association the node opens, its instances stored in the archive
 *    as they come (the same path as a C-STORE). C-GET rather than C-MOVE: the PACS needs no route back to the
 *    node (no destination AE title, host and port to configure, no firewall opening toward the site's node),
 *    and the instances arrive on a connection the node opened for this prior, so they are known as a prior's
 *    before the archive holds any of them.
 *
 * A PACS that cannot be reached, refuses, or answers out of turn fails the search with the reason; the caller
 * retries it.
 */
import type { Archive, StudyRecord } from '../archive/archive.ts'
import { openNetworkDataset, storeFromNetwork } from '../archive/index.ts'
import { type Identifier, keyText } from '../dicom/identifier.ts'
import type { DicomDestination } from '../dicom/peers.ts'
import {
  findStudyRoot,
  getStudyRoot,
  keysOf,
  moveStudyRoot,
  type RetrieveOutcome
} from '../dicom/scu/query-retrieve.ts'
import {
  choosePriors,
  type CurrentStudy,
  daOf,
  dayOf,
  earliestPriorDay,
  type PriorCandidate,
  type PriorRule
} from '../worklist/prior-rule.ts'

/** Studies whose series are looked at for their body part, newest first: more is a patient with a long history. */
const MAX_SERIES_LOOKUPS = 50

export const pacsText = (pacs: DicomDestination): string => `${pacs.aeTitle}@${pacs.host}:${pacs.port}`

const first = (study: StudyRecord, tag: string): string => {
  const value = study.attributes[tag]
  return (typeof value === 'string' ? value : Array.isArray(value) ? String(value[0] ?? '') : '').trim()
}

/** What the search asks the PACS about the case's study: the patient, and the study itself for the rule. */
export interface SearchSubject {
  current: CurrentStudy
  patientId: string
  issuerOfPatientId: string
}

/** The facts of the case's study the search needs, from the archive; a study without a Patient ID has none. */
export function subjectOf(study: StudyRecord, bodyPart: string): SearchSubject | string {
  const patientId = first(study, '00100020')
  if (patientId === '') return 'the study has no Patient ID to look the patient up by'
  return {
    patientId,
    issuerOfPatientId: first(study, '00100021'),
    current: {
      studyInstanceUid: study.studyUid,
      studyDate: first(study, '00080020'),
      modalities: study.modalities,
      bodyPart
    }
  }
}

const values = (identifier: Identifier, tag: string): string[] =>
  (keyText(identifier, tag) ?? '')
    .split('\\')
    .map(v => v.trim())
    .filter(v => v !== '')

/** Steps 1 and 2: the patient's studies in the PACS that the rule takes, newest first. */
export async function findPriors(
  pacs: DicomDestination,
  aeTitle: string,
  subject: SearchSubject,
  rule: PriorRule,
  now = new Date()
): Promise<PriorCandidate[]> {
  if (rule.max === 0) return []
  const { current } = subject
  const today = dayOf(current.studyDate) ?? dayOf(daOf(now)) ?? now
  const keys = keysOf({
    '00100020': ['LO', subject.patientId],
    ...(subject.issuerOfPatientId === '' ? {} : { '00100021': ['LO', subject.issuerOfPatientId] }),
    '00080020': ['DA', `${daOf(earliestPriorDay(today, rule))}-${daOf(today)}`],
    '0020000D': ['UI', ''],
    '00081030': ['LO', ''],
    '00080061': ['CS', ''],
    '00080050': ['SH', ''],
    '00201208': ['IS', '']
  })
  const studies = await findStudyRoot(pacs, aeTitle, 'STUDY', keys)
  const modalities = new Set(current.modalities.map(m => m.toUpperCase()))
  const candidates = studies
    .map(
      (match): PriorCandidate => ({
        studyInstanceUid: keyText(match, '0020000D') ?? '',
        studyDate: keyText(match, '00080020') ?? '',
        studyDescription: (keyText(match, '00081030') ?? '').slice(0, 64),
        modalities: values(match, '00080061'),
        bodyParts: [],
        accessionNumber: (keyText(match, '00080050') ?? '').slice(0, 16),
        instances: Number.parseInt(keyText(match, '00201208') ?? '', 10) || 0
      })
    )
    .filter(c => /^[0-9.]{1,64}$/.test(c.studyInstanceUid) && c.studyInstanceUid !== current.studyInstanceUid)
    // A PACS that keeps no Modalities in Study is asked per series below.
    .filter(
      c => !rule.sameModality || c.modalities.length === 0 || c.modalities.some(m => modalities.has(m.toUpperCase()))
    )
    .sort((a, b) => (a.studyDate < b.studyDate ? 1 : a.studyDate > b.studyDate ? -1 : 0))
    .slice(0, MAX_SERIES_LOOKUPS)
  const needSeries = rule.sameBodyPart || candidates.some(c => c.modalities.length === 0)
  if (needSeries) {
    for (const candidate of candidates) {
      const series = await findStudyRoot(
        pacs,
        aeTitle,
        'SERIES',
        keysOf({
          '0020000D': ['UI', candidate.studyInstanceUid],
          '0020000E': ['UI', ''],
          '00080060': ['CS', ''],
          '00180015': ['CS', '']
        })
      )
      candidate.bodyParts = [...new Set(series.flatMap(s => values(s, '00180015')))]
      if (candidate.modalities.length === 0)
        candidate.modalities = [...new Set(series.flatMap(s => values(s, '00080060')))]
    }
  }
  return choosePriors(current, candidates, rule, now).map(c => ({
    ...c,
    modalities: c.modalities.filter(m => /^[A-Z0-9]{1,16}$/.test(m)).slice(0, 16)
  }))
}

/**
 * Step 3: a study retrieved from the PACS into the archive by C-GET, or by C-MOVE to the node's own AE title
 * (`method` "move": the PACS sends it to the node's DICOM port, whose C-STOREs go into the same archive).
 */
export async function retrievePrior(
  pacs: DicomDestination,
  aeTitle: string,
  studyUid: string,
  archive: Archive,
  method: PriorRule['retrieve'] = 'get'
): Promise<RetrieveOutcome> {
  const keys = keysOf({ '00080052': ['CS', 'STUDY'], '0020000D': ['UI', studyUid] })
  if (method === 'move') return await moveStudyRoot(pacs, aeTitle, keys, aeTitle)
  return await getStudyRoot(pacs, aeTitle, keys, {
    open: header => openNetworkDataset(archive, { ...header, callingAeTitle: pacs.aeTitle }),
    store: async request => await storeFromNetwork(archive, request)
  })
}

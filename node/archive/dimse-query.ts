/**
 * The archive as a Query/Retrieve SCP sees it (PS3.4 C.6): C-FIND identifiers matched against the index with
 * the matching QIDO-RS uses (qido.ts: single values, wildcards, date and time ranges, UID lists, universal
 * matching), at PATIENT (studies grouped by Patient ID), STUDY, SERIES and IMAGE level; the instances a C-MOVE
 * or C-GET names by its unique keys, read as stored; and the audit trail: each query is 110112 Query (the
 * keys used, never their values), each retrieve 110106 Export, per study.
 *
 * Sequence matching (C.2.2.2.6) on the sequences the index keeps (dictionary.ts INDEXED_SEQUENCES:
 * ProcedureCodeSequence at study level, RequestAttributesSequence at series level): a key with no item matches
 * everything and asks for the record's items whole; a key with one item matches a record when any one of its
 * items matches every item key that has a value (each by the rules above), and the items that do are returned,
 * each with the item keys asked for. A key of more than one item is refused (A900).
 *
 * Keys the index does not hold are optional keys radmesh does not support (C.2.2.1.3): they do not restrict the
 * match and are returned empty, sequences with no item (other sequences, and item keys of a kept sequence that
 * the index does not keep, likewise). Each query and retrieve is bounded (MAX_MATCHES,
 * MAX_RETRIEVE_INSTANCES): past the bound the request is refused, never answered in part.
 */
import type { AuditActor, AuditLog } from '../audit/log.ts'
import { DIMSE_STATUS, INDEXED_SEQUENCES, type IndexedSequence, QIDO_ATTRIBUTES } from '../dicom/dictionary.ts'
import { CHARSET_KEY, type Identifier, type IdentifierValue, QUERY_RETRIEVE_LEVEL } from '../dicom/identifier.ts'
import type {
  Destination,
  QueryLevel,
  QueryRequest,
  QueryRetrieveProvider,
  Refusal,
  RetrieveInstance,
  RetrieveReport
} from '../dicom/scp.ts'
import type { AttributeValue } from '../dicom/part10.ts'
import type { Archive, InstanceRecord, StudyRecord } from './archive.ts'
import { checkKeyValue, keyMatcher, matchableAttribute, matches, type QidoQuery } from './qido.ts'
import type { Sequences } from './records.ts'

/** Matches a C-FIND may have; past it the query is refused (A701) and the SCU asked to narrow it. */
export const MAX_MATCHES = 10_000
/** Instances a C-MOVE or C-GET may name; a large CT study has a few thousand. */
export const MAX_RETRIEVE_INSTANCES = 100_000

type Record_ = Record<string, string | string[] | number | undefined>
/** A record matched against: its attributes, and the indexed sequences of its level and those above. */
interface Candidate {
  values: Record_
  sequences: Sequences
}

const PATIENT_TAGS = ['00100010', '00100020', '00100030', '00100040']
const tagsOf = (level: 'study' | 'series' | 'instance'): string[] => QIDO_ATTRIBUTES[level].map(a => a.tag)
/** What each level matches on: its own attributes and those of the levels above. */
const LEVEL_TAGS: Record<QueryLevel, Set<string>> = {
  PATIENT: new Set(PATIENT_TAGS),
  STUDY: new Set(tagsOf('study')),
  SERIES: new Set([...tagsOf('study'), ...tagsOf('series')]),
  IMAGE: new Set([...tagsOf('study'), ...tagsOf('series'), ...tagsOf('instance')])
}
const sequencesAt = (...levels: Array<'study' | 'series'>): Map<string, IndexedSequence> =>
  new Map(INDEXED_SEQUENCES.filter(s => (levels as string[]).includes(s.level)).map(s => [s.tag, s]))
/** The indexed sequences each level matches on and returns. */
const LEVEL_SEQUENCES: Record<QueryLevel, Map<string, IndexedSequence>> = {
  PATIENT: new Map(),
  STUDY: sequencesAt('study'),
  SERIES: sequencesAt('study', 'series'),
  IMAGE: sequencesAt('study', 'series')
}

/** A sequence key on an indexed sequence: its item keys with a value, to match; its item, to answer with. */
interface SequenceKey {
  sequence: IndexedSequence
  matchers: Array<{ tag: string; match: (value: string) => boolean }>
  /** the key's item; undefined for a key with no item (universal matching, every item asked for whole) */
  item: Identifier | undefined
}

/** The unique keys every response carries (PS3.4 C.4.1.1.3.2), by level. */
const UNIQUE_KEYS: Record<QueryLevel, Array<[string, string]>> = {
  PATIENT: [['00100020', 'LO']],
  STUDY: [['0020000D', 'UI']],
  SERIES: [
    ['0020000D', 'UI'],
    ['0020000E', 'UI']
  ],
  IMAGE: [
    ['0020000D', 'UI'],
    ['0020000E', 'UI'],
    ['00080018', 'UI']
  ]
}
/** Keys that steer the query rather than match. */
const NOT_MATCHED = new Set([QUERY_RETRIEVE_LEVEL, CHARSET_KEY, '00080054'])

export interface DimseQueryComponents {
  archive: Pick<Archive, 'studies' | 'seriesOf' | 'instancesOf' | 'instance' | 'chunksOf'>
  audit: Pick<AuditLog, 'append'>
  /** C-MOVE destinations by AE title */
  destinations: ReadonlyMap<string, Destination>
}

const refused = (status: number, errorComment: string): Refusal => ({ status, errorComment })
const actorOf = (request: QueryRequest): AuditActor => ({
  type: 'ae',
  id: request.callingAeTitle,
  ...(request.address === undefined ? {} : { address: request.address })
})

const studyRecord = (study: StudyRecord): Record_ => ({
  ...study.attributes,
  '0020000D': study.studyUid,
  '00080061': study.modalities,
  '00201206': study.seriesCount,
  '00201208': study.instanceCount,
  '00080056': 'ONLINE'
})

const instanceRecord = (instance: InstanceRecord): Record_ => ({
  ...instance.attributes,
  '0020000E': instance.seriesUid,
  '00080016': instance.sopClassUid,
  '00080018': instance.sopUid,
  '00083002': instance.transferSyntaxUid
})

function textValues(value: string | string[] | number | undefined): string[] {
  if (value === undefined) return []
  return (Array.isArray(value) ? value : [String(value)]).map(v => v.trim())
}

/** The sequence key of an identifier's sequence on an indexed sequence, or a refusal. */
function sequenceKeyOf(sequence: IndexedSequence, items: Identifier[]): SequenceKey | Refusal {
  if (items.length > 1) {
    const message = `${sequence.keyword}: a sequence matching key has one item (PS3.4 C.2.2.2.6), not ${items.length}`
    return refused(DIMSE_STATUS.identifierMismatch, message)
  }
  const item = items[0]
  const matchers: SequenceKey['matchers'] = []
  for (const [tag, value] of item ?? []) {
    const attribute = sequence.items.find(a => a.tag === tag)
    if (attribute === undefined || !('values' in value)) continue
    const text = value.values.join('\\').trim()
    try {
      checkKeyValue(attribute, text)
    } catch (error) {
      return refused(DIMSE_STATUS.identifierMismatch, `${sequence.keyword}: ${(error as Error).message}`)
    }
    const match = keyMatcher(attribute, text)
    if (match !== undefined) matchers.push({ tag, match })
  }
  return { sequence, matchers, item }
}

const itemMatches = (key: SequenceKey, item: Record<string, AttributeValue>): boolean =>
  key.matchers.every(({ tag, match }) => textValues(item[tag]).some(match))

/** The items of a record's sequence that a sequence key selects (all of them when it matches on nothing). */
function selectedItems(key: SequenceKey, sequences: Sequences): Array<Record<string, AttributeValue>> {
  const items = sequences[key.sequence.tag] ?? []
  return key.matchers.length === 0 ? items : items.filter(item => itemMatches(key, item))
}

interface FindQuery {
  query: QidoQuery
  sequenceKeys: Map<string, SequenceKey>
}

/** The query a C-FIND identifier makes, the keys this level cannot match left out. */
function queryOf(identifier: Identifier, level: QueryLevel): FindQuery | Refusal {
  const tags = LEVEL_TAGS[level]
  const filters: QidoQuery['filters'] = []
  const sequenceKeys = new Map<string, SequenceKey>()
  for (const [tag, value] of identifier) {
    const sequence = LEVEL_SEQUENCES[level].get(tag)
    if ('items' in value && sequence !== undefined) {
      const key = sequenceKeyOf(sequence, value.items)
      if ('status' in key) return key
      sequenceKeys.set(tag, key)
      continue
    }
    if (NOT_MATCHED.has(tag) || !('values' in value) || !tags.has(tag)) continue
    const text = value.values.join('\\').trim()
    if (text === '') continue
    const attribute = matchableAttribute(tag)
    if (attribute === undefined) continue
    try {
      checkKeyValue(attribute, text)
    } catch (error) {
      return refused(DIMSE_STATUS.identifierMismatch, (error as Error).message)
    }
    filters.push({ tag, value: text })
  }
  return { query: { filters, includeAll: false, includeFields: [], offset: 0, fuzzy: false }, sequenceKeys }
}

const candidateMatches = (find: FindQuery, candidate: Candidate): boolean =>
  matches(find.query, candidate.values) &&
  [...find.sequenceKeys.values()].every(
    key => key.matchers.length === 0 || selectedItems(key, candidate.sequences).length > 0
  )

/** A returned item: the item keys asked for (every kept one, for a key with no item), valued from the record's item. */
function answerItem(key: SequenceKey, item: Record<string, AttributeValue>): Identifier {
  const answer: Identifier = new Map()
  const asked: Array<[string, IdentifierValue]> =
    key.item === undefined
      ? key.sequence.items.map(a => [a.tag, { vr: a.vr, values: [] }])
      : [...key.item].filter(([tag]) => tag !== CHARSET_KEY)
  for (const [tag, value] of asked) {
    const kept = key.sequence.items.some(a => a.tag === tag)
    answer.set(tag, 'items' in value || !kept ? emptyOf(value) : { vr: value.vr, values: textValues(item[tag]) })
  }
  return answer
}

const emptyOf = (value: IdentifierValue): IdentifierValue =>
  'items' in value ? { vr: 'SQ', items: [] } : { vr: value.vr, values: [] }

/**
 * The response identifier of a match: each key asked for, with the record's value or empty, and the unique keys
 * of the level and those above (the Patient ID too, in the Patient Root model).
 */
function answerOf(identifier: Identifier, find: FindQuery, candidate: Candidate, request: QueryRequest): Identifier {
  const { level, model } = request
  const record = candidate.values
  const answer: Identifier = new Map()
  for (const [tag, value] of identifier) {
    if (tag === QUERY_RETRIEVE_LEVEL || tag === CHARSET_KEY) continue
    const key = find.sequenceKeys.get(tag)
    let filled: IdentifierValue
    if (key !== undefined) {
      filled = { vr: 'SQ', items: selectedItems(key, candidate.sequences).map(item => answerItem(key, item)) }
    } else {
      filled = 'items' in value ? { vr: 'SQ', items: [] } : { vr: value.vr, values: textValues(record[tag]) }
    }
    answer.set(tag, filled)
  }
  const above = model === 'patient' && level !== 'PATIENT' ? UNIQUE_KEYS.PATIENT : []
  const unique = [...above, ...UNIQUE_KEYS[level]]
  for (const [tag, vr] of unique) {
    if (!answer.has(tag)) answer.set(tag, { vr, values: textValues(record[tag]) })
  }
  return answer
}

export class DimseQuery implements QueryRetrieveProvider {
  private readonly c: DimseQueryComponents

  constructor(components: DimseQueryComponents) {
    this.c = components
  }

  destination(aeTitle: string): Destination | undefined {
    return this.c.destinations.get(aeTitle)
  }

  async find(request: QueryRequest): Promise<Identifier[] | Refusal> {
    const { identifier, level } = request
    const find = queryOf(identifier, level)
    if ('status' in find) return find
    const matched: Candidate[] = []
    for await (const candidate of this.records(level, find.query)) {
      if (!candidateMatches(find, candidate)) continue
      if (matched.length === MAX_MATCHES) {
        return refused(DIMSE_STATUS.tooManyMatches, `more than ${MAX_MATCHES} matches: narrow the query`)
      }
      matched.push(candidate)
    }
    const sequenceKeys = [...find.sequenceKeys].flatMap(([tag, key]) => key.matchers.map(m => `${tag}>${m.tag}`))
    const keys = [...find.query.filters.map(f => f.tag), ...sequenceKeys].join(',') || 'no filter'
    await this.c.audit.append({
      event: 'query',
      action: 'E',
      outcome: 0,
      actor: actorOf(request),
      detail: `C-FIND ${level} by ${keys}: ${matched.length} result(s)`
    })
    return matched.map(candidate => answerOf(identifier, find, candidate, request))
  }

  /** Candidate records of a level, each holding the attributes of the levels above; pruned by study keys. */
  private async *records(level: QueryLevel, query: QidoQuery): AsyncGenerator<Candidate> {
    if (level === 'PATIENT') {
      for (const values of await this.patients()) yield { values, sequences: {} }
      return
    }
    const studyKeys = { ...query, filters: query.filters.filter(f => LEVEL_TAGS.STUDY.has(f.tag)) }
    for await (const study of this.c.archive.studies()) {
      const studyLevel = studyRecord(study)
      const studySequences = study.sequences ?? {}
      if (level === 'STUDY') {
        yield { values: studyLevel, sequences: studySequences }
        continue
      }
      if (!matches(studyKeys, studyLevel)) continue
      for await (const series of this.c.archive.seriesOf(study.studyUid)) {
        const seriesLevel = {
          ...studyLevel,
          ...series.attributes,
          '0020000E': series.seriesUid,
          '00201209': series.instanceCount
        }
        const sequences = { ...studySequences, ...series.sequences }
        if (level === 'SERIES') {
          yield { values: seriesLevel, sequences }
          continue
        }
        for await (const instance of this.c.archive.instancesOf(study.studyUid, series.seriesUid)) {
          yield { values: { ...seriesLevel, ...instanceRecord(instance) }, sequences }
        }
      }
    }
  }

  /** Patients: the studies grouped by Patient ID, with their counts. */
  private async patients(): Promise<Record_[]> {
    const byId = new Map<string, Record_>()
    for await (const study of this.c.archive.studies()) {
      const id = textValues(study.attributes['00100020'])[0] ?? ''
      const patient = byId.get(id) ?? {
        ...Object.fromEntries(PATIENT_TAGS.map(tag => [tag, study.attributes[tag]])),
        '00201200': 0,
        '00201202': 0,
        '00201204': 0
      }
      patient['00201200'] = Number(patient['00201200']) + 1
      patient['00201202'] = Number(patient['00201202']) + study.seriesCount
      patient['00201204'] = Number(patient['00201204']) + study.instanceCount
      byId.set(id, patient)
    }
    return [...byId.values()]
  }

  async retrieve(request: QueryRequest): Promise<RetrieveInstance[] | Refusal> {
    const list = (tag: string): string[] => {
      const value = request.identifier.get(tag)
      if (value === undefined || !('values' in value)) return []
      return value.values
        .flatMap(v => v.split('\\'))
        .map(v => v.trim())
        .filter(v => v !== '')
    }
    const keyOf: Record<QueryLevel, [string, string]> = {
      PATIENT: ['00100020', 'PatientID'],
      STUDY: ['0020000D', 'StudyInstanceUID'],
      SERIES: ['0020000E', 'SeriesInstanceUID'],
      IMAGE: ['00080018', 'SOPInstanceUID']
    }
    const [tag, keyword] = keyOf[request.level]
    const wanted = list(tag)
    if (wanted.length === 0) return refused(DIMSE_STATUS.identifierMismatch, `no ${keyword} to retrieve by`)
    const found: InstanceRecord[] = []
    const add = async (records: AsyncIterable<InstanceRecord>): Promise<boolean> => {
      for await (const instance of records) {
        if (found.length === MAX_RETRIEVE_INSTANCES) return false
        found.push(instance)
      }
      return true
    }
    const { archive } = this.c
    let within = true
    if (request.level === 'IMAGE') {
      for (const uid of wanted.slice(0, MAX_RETRIEVE_INSTANCES)) {
        const instance = await archive.instance(uid)
        if (instance !== undefined) found.push(instance)
      }
    } else {
      const studies = new Set(list('0020000D'))
      const series = new Set(wanted)
      for await (const study of archive.studies()) {
        const patientId = textValues(study.attributes['00100020'])[0] ?? ''
        if (request.level === 'PATIENT' && !wanted.includes(patientId)) continue
        if (request.level !== 'PATIENT' && studies.size > 0 && !studies.has(study.studyUid)) continue
        if (request.level === 'SERIES') {
          for await (const s of archive.seriesOf(study.studyUid)) {
            if (series.has(s.seriesUid)) within &&= await add(archive.instancesOf(study.studyUid, s.seriesUid))
          }
        } else {
          within &&= await add(archive.instancesOf(study.studyUid))
        }
        if (!within) break
      }
    }
    if (!within) {
      return refused(DIMSE_STATUS.subOperationsRefused, `more than ${MAX_RETRIEVE_INSTANCES} instances: retrieve less`)
    }
    return found.map(instance => this.toRetrieve(instance))
  }

  private toRetrieve(instance: InstanceRecord): RetrieveInstance {
    const { archive } = this.c
    return {
      studyUid: instance.studyUid,
      seriesUid: instance.seriesUid,
      sopClassUid: instance.sopClassUid,
      sopInstanceUid: instance.sopUid,
      transferSyntaxUid: instance.transferSyntaxUid,
      // The data set as stored: the file's chunks, less the preamble and File Meta Information before it.
      dataset: async function* () {
        let skip = instance.datasetOffset
        for await (const chunk of archive.chunksOf(instance)) {
          if (skip >= chunk.length) {
            skip -= chunk.length
            continue
          }
          yield skip > 0 ? chunk.subarray(skip) : chunk
          skip = 0
        }
      }
    }
  }

  /** One 110106 Export record per study the retrieve touched. */
  async retrieved(report: RetrieveReport): Promise<void> {
    const studies = new Map<string, { sent: string[]; failed: number }>()
    for (const [list, sent] of [
      [report.sent, true],
      [report.failed, false]
    ] as const) {
      for (const instance of list) {
        const entry = studies.get(instance.studyUid) ?? { sent: [], failed: 0 }
        if (sent) entry.sent.push(instance.sopInstanceUid)
        else entry.failed++
        studies.set(instance.studyUid, entry)
      }
    }
    const how = report.operation === 'move' ? `C-MOVE to ${report.destination}` : `C-GET by ${report.destination}`
    for (const [study, { sent, failed }] of studies) {
      await this.c.audit.append({
        event: 'export',
        action: 'R',
        outcome: failed === 0 ? 0 : sent.length === 0 ? 8 : 4,
        actor: actorOf(report.request),
        study,
        instances: sent,
        detail: `${how}: ${sent.length} sent, ${failed} failed`
      })
    }
  }
}

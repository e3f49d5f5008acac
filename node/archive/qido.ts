/**
 * QIDO-RS query parameters and matching (PS3.18 8.3.4, PS3.4 C.2.2.2) over index records, and the DICOM JSON
 * of a matched record.
 *
 * Index records are keyed by 8-hex tag; values are strings (multi-valued: arrays; numbers are accepted too).
 * Matching follows PS3.4 C.2.2.2: an empty key matches everything; single values match exactly (Person Names
 * ignore case under `fuzzymatching=true`); `*` and `?` are wildcards for text VRs; UIDs (and code strings) may
 * be a list separated by `\` or `,`; dates and times may be ranges `A-B`, `-B`, `A-`. A multi-valued record
 * attribute (ModalitiesInStudy) matches when any of its values does; an absent or empty one matches only an
 * empty key or `*`.
 */
import { BadRequestError } from '../errors.ts'
import { type DicomAttribute, type IndexLevel, QIDO_ATTRIBUTES as QIDO_DEFAULTS } from '../dicom/dictionary.ts'
import { personName } from '../dicom/json.ts'
import { wildcardMatcher } from './wildcard.ts'

export type Level = IndexLevel

export type IndexedAttribute = DicomAttribute

export interface QidoQuery {
  filters: Array<{ tag: string; value: string }>
  includeAll: boolean
  /** Tags (8 hex, upper case) to return besides the level's defaults. */
  includeFields: string[]
  limit?: number
  offset: number
  fuzzy: boolean
}

type RecordValue = string | string[] | number | undefined

const attr = (tag: string, keyword: string, vr: string): IndexedAttribute => ({ tag, keyword, vr })

/** Stored as the instance's transfer syntax; answered as Available Transfer Syntax UID (0008,3002). */
const TRANSFER_SYNTAX_UID = '00020010'
const AVAILABLE_TRANSFER_SYNTAX_UID = '00083002'

/** What each level returns by default, and (with the levels above it) what it can match on. */
export const QIDO_ATTRIBUTES: Record<Level, IndexedAttribute[]> = QIDO_DEFAULTS

export const MAX_LIMIT = 10000
/**
 * The longest matching key value taken, in characters, lists included. PS3.5 values are short (LO 64, PN 64 per
 * group, a UID 64); this bounds the work a query asks of each record it is matched against.
 */
export const MAX_KEY_VALUE_CHARS = 1024

const LEVELS: Level[] = ['study', 'series', 'instance']
const ALL_ATTRIBUTES = new Map<string, IndexedAttribute>()
const BY_KEYWORD = new Map<string, IndexedAttribute>()
for (const level of LEVELS) {
  for (const a of QIDO_ATTRIBUTES[level]) {
    ALL_ATTRIBUTES.set(a.tag, a)
    BY_KEYWORD.set(a.keyword, a)
  }
}
BY_KEYWORD.set('AvailableTransferSyntaxUID', attr(TRANSFER_SYNTAX_UID, 'TransferSyntaxUID', 'UI'))

/** The attribute matched on under an 8-hex tag (QIDO-RS and C-FIND alike), if radmesh matches on it. */
export const matchableAttribute = (tag: string): IndexedAttribute | undefined => ALL_ATTRIBUTES.get(tag)

/**
 * Throws BadRequestError unless `value` is a matching key value radmesh takes for the attribute: at most
 * MAX_KEY_VALUE_CHARS characters, dates and times well formed (ranges included), integers integers.
 */
export function checkKeyValue(attribute: IndexedAttribute, value: string): void {
  if (value.length > MAX_KEY_VALUE_CHARS) {
    throw new BadRequestError(`${attribute.keyword}: a matching key value is at most ${MAX_KEY_VALUE_CHARS} characters`)
  }
  checkValue(attribute, value)
}

/** The attributes a query at `level` may match on: its own and those of the levels above it. */
function matchableAt(level: Level): Set<string> {
  const tags = new Set<string>()
  for (const l of LEVELS.slice(0, LEVELS.indexOf(level) + 1)) for (const a of QIDO_ATTRIBUTES[l]) tags.add(a.tag)
  return tags
}

/** A keyword or an 8-hex tag, as the attribute it names; undefined when unknown. */
function resolve(name: string): IndexedAttribute | undefined {
  if (/^[0-9A-Fa-f]{8}$/.test(name)) {
    const tag = name.toUpperCase()
    return ALL_ATTRIBUTES.get(tag === AVAILABLE_TRANSFER_SYNTAX_UID ? TRANSFER_SYNTAX_UID : tag)
  }
  return BY_KEYWORD.get(name)
}

/** Query parameters that are not attributes (PS3.18 8.3.4); `accept` and `charset` are allowed in any URI. */
const IGNORED_PARAMETERS = new Set(['accept', 'charset'])

/**
 * Reads QIDO-RS query parameters. Attribute keys are keywords or 8-hex tags; `includefield` takes `all`
 * or a list (comma-separated, or the parameter repeated); `limit` (capped at 10000), `offset` and
 * `fuzzymatching` as PS3.18 8.3.4 defines. Throws BadRequestError on an unknown attribute, one that
 * cannot be matched at this level, a sequence path, bad limit/offset, or a malformed date, time or number.
 */
export function parseQidoQuery(params: Record<string, string | string[] | undefined>, level: Level): QidoQuery {
  const matchable = matchableAt(level)
  const values = new Map<string, string[]>()
  const includeFields: string[] = []
  let includeAll = false
  let limit: number | undefined
  let offset = 0
  let fuzzy = false

  for (const [key, raw] of Object.entries(params)) {
    if (raw === undefined) continue
    const given = Array.isArray(raw) ? raw : [raw]
    const name = key.toLowerCase()
    if (IGNORED_PARAMETERS.has(name)) continue
    if (name === 'includefield') {
      for (const field of given.flatMap(v => v.split(','))) {
        const trimmed = field.trim()
        if (trimmed === '') continue
        if (trimmed.toLowerCase() === 'all') {
          includeAll = true
          continue
        }
        const found = resolve(trimmed)
        const notIndexed = found === undefined && /^[0-9A-Fa-f]{8}$/.test(trimmed) // taken, and never present
        if (found !== undefined) includeFields.push(found.tag)
        else if (notIndexed) includeFields.push(trimmed.toUpperCase())
        else throw new BadRequestError(`includefield "${trimmed}" is not an attribute keyword or tag radmesh knows`)
      }
      continue
    }
    if (name === 'limit' || name === 'offset') {
      const n = integerParameter(name, given)
      if (name === 'limit') {
        if (n === 0) throw new BadRequestError('limit must be at least 1')
        limit = Math.min(n, MAX_LIMIT)
      } else {
        offset = n
      }
      continue
    }
    if (name === 'fuzzymatching') {
      const value = single(name, given).toLowerCase()
      if (value !== 'true' && value !== 'false') {
        throw new BadRequestError(`fuzzymatching must be true or false, not "${value}"`)
      }
      fuzzy = value === 'true'
      continue
    }
    if (key.includes('.')) {
      throw new BadRequestError(`"${key}": matching on attributes inside sequences is not supported`)
    }
    const attribute = resolve(key)
    if (attribute === undefined) {
      const known = [...BY_KEYWORD.keys()].join(', ')
      throw new BadRequestError(`"${key}" is not a query parameter or an attribute radmesh can match (${known})`)
    }
    if (!matchable.has(attribute.tag)) {
      throw new BadRequestError(`${attribute.keyword} cannot be matched in a ${level}-level query`)
    }
    values.set(attribute.tag, [...(values.get(attribute.tag) ?? []), ...given])
  }

  const filters: QidoQuery['filters'] = []
  for (const [tag, given] of values) {
    const attribute = ALL_ATTRIBUTES.get(tag) as IndexedAttribute
    const distinct = [...new Set(given)]
    if (distinct.length > 1 && attribute.vr !== 'UI' && attribute.vr !== 'CS') {
      throw new BadRequestError(`${attribute.keyword} is given more than once`)
    }
    const value = distinct.join('\\')
    if (value.length > MAX_KEY_VALUE_CHARS) {
      const message = `${attribute.keyword}: a matching key value is at most ${MAX_KEY_VALUE_CHARS} characters`
      throw new BadRequestError(message)
    }
    checkValue(attribute, value)
    filters.push({ tag, value })
  }
  return {
    filters,
    includeAll,
    includeFields: [...new Set(includeFields)],
    ...(limit === undefined ? {} : { limit }),
    offset,
    fuzzy
  }
}

function single(name: string, given: string[]): string {
  if (given.length !== 1) throw new BadRequestError(`${name} is given ${given.length} times`)
  return (given[0] as string).trim()
}

function integerParameter(name: string, given: string[]): number {
  const text = single(name, given)
  const n = Number(text)
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n)) {
    throw new BadRequestError(`${name} must be a non-negative integer, not "${text}"`)
  }
  return n
}

// ---- Values ----

const DATE = /^(\d{4})(\d{2})(\d{2})$/
const TIME = /^(\d{2})(?:(\d{2})(?:(\d{2})(?:\.(\d{1,6}))?)?)?$/

function validDate(text: string): boolean {
  const m = DATE.exec(text)
  if (m === null) return false
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])]
  const date = new Date(Date.UTC(year, month - 1, day))
  return date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day
}

function validTime(text: string): boolean {
  const m = TIME.exec(text)
  return m !== null && Number(m[1]) < 24 && Number(m[2] ?? 0) < 60 && Number(m[3] ?? 0) < 61
}

/** The components of a key value: split at backslashes, and at commas for UIDs and code strings. */
function components(vr: string, value: string): string[] {
  return value.split(vr === 'UI' || vr === 'CS' ? /[\\,]/ : /\\/).map(v => v.trim())
}

function checkValue(attribute: IndexedAttribute, value: string): void {
  if (value === '' || value === '*') return
  const { vr, keyword } = attribute
  for (const part of components(vr, value)) {
    if (vr === 'DA' || vr === 'TM') {
      const valid = vr === 'DA' ? validDate : validTime
      const format = vr === 'DA' ? 'YYYYMMDD' : 'HHMMSS'
      const bounds = part.split('-')
      const ok =
        bounds.length === 1
          ? valid(part)
          : bounds.length === 2 && !(bounds[0] === '' && bounds[1] === '') && bounds.every(b => b === '' || valid(b))
      if (!ok) {
        const forms = `${format}-${format}, -${format}, ${format}-`
        throw new BadRequestError(`${keyword} "${part}" is not a ${format} value or range (${forms})`)
      }
    } else if ((vr === 'IS' || vr === 'US') && !/^[+-]?\d+$/.test(part)) {
      throw new BadRequestError(`${keyword} "${part}" is not an integer`)
    }
  }
}

/** Dates and times as fixed-width strings that compare in order; old forms ("1997.04.24", "14:04:38") accepted. */
function normalizeDate(text: string): string | undefined {
  const compact = text.trim().replace(/[.-]/g, '')
  return validDate(compact) ? compact : undefined
}

function normalizeTime(text: string, upper: boolean): string | undefined {
  const m = TIME.exec(text.trim().replace(/:/g, ''))
  if (m === null) return undefined
  const fill = (part: string | undefined, max: string): string => part ?? (upper ? max : '00')
  const fraction = (m[4] ?? '').padEnd(6, upper && m[4] === undefined ? '9' : '0')
  return `${m[1]}${fill(m[2], '59')}${fill(m[3], '59')}.${fraction}`
}

type Matcher = (value: string) => boolean

function componentMatcher(vr: string, part: string, fuzzy: boolean): Matcher {
  if (vr === 'DA' || vr === 'TM') {
    const normalize = (text: string, upper: boolean): string | undefined =>
      vr === 'DA' ? normalizeDate(text) : normalizeTime(text, upper)
    if (!part.includes('-')) {
      const wanted = normalize(part, false)
      return value => normalize(value, false) === wanted
    }
    const [from = '', to = ''] = part.split('-')
    const low = from === '' ? undefined : normalize(from, false)
    const high = to === '' ? undefined : normalize(to, true)
    return value => {
      const v = normalize(value, false)
      return v !== undefined && (low === undefined || v >= low) && (high === undefined || v <= high)
    }
  }
  if (vr === 'IS' || vr === 'US') {
    const wanted = Number(part)
    return value => value.trim() !== '' && Number(value) === wanted
  }
  if (vr === 'UI') return value => value === part
  const ignoreCase = vr === 'PN' && fuzzy
  const match = ignoreCase || /[*?]/.test(part) ? wildcardMatcher(part, ignoreCase) : (value: string) => value === part
  // A Person Name matches on the whole value or on any one of its component groups (alphabetic, ideographic, phonetic).
  if (vr === 'PN') {
    const anyGroup = (value: string): boolean => value.split('=').some(group => group !== '' && match(group))
    return value => match(value) || (value.includes('=') && anyGroup(value))
  }
  return match
}

function filterMatcher(attribute: IndexedAttribute, value: string, fuzzy: boolean): Matcher | undefined {
  if (value === '' || (value === '*' && attribute.vr !== 'UI')) return undefined // universal
  const alternatives = components(attribute.vr, value).map(part => componentMatcher(attribute.vr, part, fuzzy))
  return v => alternatives.some(m => m(v))
}

/**
 * The matcher of one matching key value for an attribute (a sequence's item key, say): whether a value of the
 * record matches it; undefined when the key is universal (empty, or `*` outside UIDs).
 */
export const keyMatcher = (attribute: IndexedAttribute, value: string): ((value: string) => boolean) | undefined =>
  filterMatcher(attribute, value, false)

const compiled = new WeakMap<QidoQuery, Array<{ tag: string; match: Matcher }>>()

function compile(query: QidoQuery): Array<{ tag: string; match: Matcher }> {
  let found = compiled.get(query)
  if (found === undefined) {
    found = []
    for (const filter of query.filters) {
      const attribute = ALL_ATTRIBUTES.get(filter.tag)
      if (attribute === undefined) continue
      const match = filterMatcher(attribute, filter.value, query.fuzzy)
      if (match !== undefined) found.push({ tag: filter.tag, match })
    }
    compiled.set(query, found)
  }
  return found
}

function recordValue(record: Record<string, RecordValue>, tag: string): RecordValue {
  if (tag === TRANSFER_SYNTAX_UID) return record[AVAILABLE_TRANSFER_SYNTAX_UID] ?? record[TRANSFER_SYNTAX_UID]
  return record[tag]
}

function recordValues(value: RecordValue): string[] {
  if (value === undefined) return []
  const list = Array.isArray(value) ? value : [String(value)]
  return list.map(v => v.trim()).filter(v => v !== '')
}

/**
 * Whether an index record (keyed by 8-hex tag) satisfies every filter of the query. The transfer syntax is
 * looked up under 00083002, else 00020010.
 */
export function matches(query: QidoQuery, record: Record<string, RecordValue>): boolean {
  for (const { tag, match } of compile(query)) {
    if (!recordValues(recordValue(record, tag)).some(match)) return false
  }
  return true
}

// ---- Answer ----

function jsonValue(vr: string, value: string | number): unknown {
  if (typeof value === 'number') return Number.isFinite(value) ? value : null
  const text = value.trim()
  if (text === '') return null
  if (vr === 'PN') return personName(text)
  if (vr === 'IS' || vr === 'US') {
    const n = Number(text)
    return /^[+-]?\d+$/.test(text) && Number.isSafeInteger(n) ? n : vr === 'IS' ? text : null
  }
  return text
}

/**
 * The DICOM JSON of a matched record: the level's default attributes (with `includefield=all`, those of the
 * levels above too), the included fields and the matching keys, when the record has them. PN values are
 * `{ Alphabetic }` objects, IS and US values numbers; an empty value is an attribute without Value.
 * The transfer syntax is answered as Available Transfer Syntax UID (0008,3002). Keys are in tag order.
 */
export function toQidoJson(
  record: Record<string, RecordValue>,
  level: Level,
  query: QidoQuery
): Record<string, { vr: string; Value?: unknown[] }> {
  const tags = new Set<string>()
  const levels = query.includeAll ? LEVELS.slice(0, LEVELS.indexOf(level) + 1) : [level]
  for (const l of levels) for (const a of QIDO_ATTRIBUTES[l]) tags.add(a.tag)
  for (const tag of query.includeFields) tags.add(tag)
  for (const filter of query.filters) tags.add(filter.tag)

  const out: Record<string, { vr: string; Value?: unknown[] }> = {}
  for (const tag of tags) {
    const attribute = ALL_ATTRIBUTES.get(tag)
    const raw = recordValue(record, tag)
    if (attribute === undefined || raw === undefined) continue
    const values = (Array.isArray(raw) ? raw : [raw]).map(v => jsonValue(attribute.vr, v))
    const key = tag === TRANSFER_SYNTAX_UID ? AVAILABLE_TRANSFER_SYNTAX_UID : tag
    out[key] = values.every(v => v === null) ? { vr: attribute.vr } : { vr: attribute.vr, Value: values }
  }
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
}

/**
 * `npm run fuzz -- qido`: mutated QIDO-RS queries on the study, series and instance routes of a node holding
 * the known-good instances: wildcards (many `*` and `?`), huge values, bad dates and time ranges, UID lists,
 * unknown and repeated keys, broken percent-encodings, limit and offset extremes, includefield lists, odd
 * paths and Accept headers. Each must be answered within 5 s while /api/health stays under 1 s; a 200 must be
 * a JSON array, a 4xx the documented error body.
 */
import { type CaseResult, type Kind, type KindOptions, type KindTally, runKind } from './common.ts'
import type { InstanceRef, Ledger } from './ledger.ts'
import type { Rng } from './rng.ts'
import { errorCodeOf, isDocumentedError, stowKnownGood } from './stow.ts'
import type { Target } from './target.ts'

const MATCH_KEYS = [
  'PatientName',
  'PatientID',
  'StudyDate',
  'StudyTime',
  'AccessionNumber',
  'ModalitiesInStudy',
  'Modality',
  'StudyInstanceUID',
  'SeriesInstanceUID',
  'SOPInstanceUID',
  'StudyDescription',
  'SeriesDescription',
  'ReferringPhysicianName',
  'IssuerOfPatientID',
  'PatientBirthDate',
  'PatientSex',
  'SeriesNumber',
  'InstanceNumber',
  'SOPClassUID',
  'StudyID',
  'BodyPartExamined',
  '00100010',
  '0020000D',
  '00080020',
  '00100020',
  '0008103E',
  '00080060',
  '0020000d',
  'patientname'
]
const ODD_KEYS = [
  'Foo',
  '__proto__',
  'constructor',
  'prototype',
  'hasOwnProperty',
  'toString',
  '',
  ' ',
  'X'.repeat(300),
  '00101002.00100020',
  'PatientName.FamilyName',
  '7FE00010',
  'FFFFFFFF',
  '00000000',
  'PatientName[]',
  'a[b][c]',
  'PatientName[0]',
  'includefield[]',
  'limit[]',
  '0010,0010',
  '(0010,0010)',
  'ReferencedSOPSequence',
  '00081199'
]

const DATES = [
  '20240101',
  '20240101-20241231',
  '-20240101',
  '20240101-',
  '-',
  '20241301',
  '20240230',
  '2024',
  '202401011',
  '2024-01-01',
  '19000101-99991231',
  '00000000',
  '99999999',
  '20240101-20230101',
  '20240101\\20240102',
  'yesterday',
  '20240101-20240101-20240101',
  ''
]
const TIMES = [
  '120000',
  '120000-130000',
  '12',
  '1200',
  '120000.123456',
  '240000',
  '-',
  '126060',
  '-120000',
  '120000-',
  '12:00:00'
]
const NUMBERS = [
  '-1',
  '0',
  '1',
  '100',
  '101',
  '1e309',
  '9999999999999999999',
  'NaN',
  '0x10',
  ' 5',
  '5.5',
  '',
  '2147483648',
  '-0',
  '+5',
  'Infinity',
  '1,2',
  '\u0661\u0662'
]
const NAMES = [
  'DOE^JOHN',
  '=',
  '^^^^',
  'D*^J*',
  'M\u00fcller^Hans',
  'Doe^John^^^=Doe^John',
  '*^*^*^*^*',
  '\\',
  'a\\b\\c',
  '"',
  '<script>',
  '\u0000',
  '\ud800',
  '%',
  '\u5c71\u7530^\u592a\u90ce=\u3084\u307e\u3060^\u305f\u308d\u3046'
]
const INCLUDE_FIELDS = [
  'all',
  'all,all',
  '00100010,00100020',
  'PatientName,PatientID',
  'bogus',
  '0010001',
  ',,,,',
  'X'.repeat(10_000),
  '00101002.00100020'
]
const ACCEPTS = ['application/json', '*/*', 'application/xml', 'text/html', '']

/** A wildcard pattern, the kind that made backtracking matchers take seconds (issue 13, finding 2). */
function wildcard(rng: Rng): string {
  const count = rng.pick([1, 2, 5, 14, 20, 40, 200])
  const star = rng.pick(['*', '?', '*?', '?*', '*a'])
  return star.repeat(count) + rng.pick(['', '#', 'x', 'zzzz', '%', '\\', 'A'.repeat(100)])
}

function valueFor(key: string, rng: Rng, refs: InstanceRef[]): string {
  const lower = key.toLowerCase()
  const roll = rng.int(10)
  if (roll < 2) return wildcard(rng)
  if (roll === 2) return rng.pick(['A', '*', '?', '\\']).repeat(rng.size(100_000))
  if (lower.includes('date') || key === '00080020' || key === '00100030') return rng.pick(DATES)
  if (lower.includes('time')) return rng.pick(TIMES)
  if (lower.includes('uid') || /^0020000[de]$/i.test(key)) {
    const uids = refs.flatMap(ref => [ref.study, ref.series, ref.sop])
    const count = rng.pick([1, 1, 1, 2, 3, 10, 100, 1000])
    return Array.from({ length: count }, () =>
      rng.chance(0.5) && uids.length > 0 ? rng.pick(uids) : `1.2.${rng.u32()}`
    ).join(rng.pick([',', '\\', ',,', ', ']))
  }
  if (lower.includes('name')) return rng.pick([...NAMES, wildcard(rng)])
  if (lower.includes('number')) return rng.pick(NUMBERS)
  if (lower.includes('modalit')) return rng.pick(['CT', 'CT\\MR', 'ct', '*', '', 'CT,MR', 'X'.repeat(17)])
  return rng.pick(['', ' ', '\\', 'a\\b', 'x', '*', 'CT_small', wildcard(rng), ...NAMES])
}

function parameter(rng: Rng, refs: InstanceRef[]): [string, string] {
  const roll = rng.int(20)
  if (roll < 2) return ['limit', rng.pick(NUMBERS)]
  if (roll < 4) return ['offset', rng.pick(NUMBERS)]
  if (roll < 6) {
    const many = Array.from({ length: rng.pick([2, 50, 2000]) }, () => rng.pick([...MATCH_KEYS, 'bogus'])).join(',')
    return ['includefield', rng.pick([...INCLUDE_FIELDS, many])]
  }
  if (roll === 6) return ['fuzzymatching', rng.pick(['true', 'false', 'TRUE', '1', 'yes', ''])]
  if (roll === 7) {
    const key = rng.pick(ODD_KEYS)
    return [key, valueFor(key, rng, refs)]
  }
  const key = rng.pick(MATCH_KEYS)
  return [key, valueFor(key, rng, refs)]
}

type Level = 'study' | 'series' | 'instance'

/** Keys a level matches on (PS3.18 Table 10.6.1-5, and the levels above): what a well-formed search uses. */
const STUDY_KEYS = [
  'StudyDate',
  'StudyTime',
  'AccessionNumber',
  'ModalitiesInStudy',
  'ReferringPhysicianName',
  'StudyDescription',
  'PatientName',
  'PatientID',
  'PatientBirthDate',
  'PatientSex',
  'StudyInstanceUID',
  'StudyID'
]
const SERIES_KEYS = ['Modality', 'SeriesDescription', 'BodyPartExamined', 'SeriesInstanceUID', 'SeriesNumber']
const LEVEL_KEYS: Record<Level, string[]> = {
  study: STUDY_KEYS,
  series: [...STUDY_KEYS, ...SERIES_KEYS],
  instance: [...STUDY_KEYS, ...SERIES_KEYS, 'SOPClassUID', 'SOPInstanceUID', 'InstanceNumber']
}

/** A matching key of the level with a wildcard, a long or an ordinary value. */
function matchingParameter(rng: Rng, refs: InstanceRef[], level: Level): [string, string] {
  const key = rng.pick(LEVEL_KEYS[level])
  const roll = rng.int(3)
  return [key, roll === 0 ? wildcard(rng) : valueFor(key, rng, refs)]
}

/** Percent-encodings a client (or an attacker) may get wrong. */
const BROKEN_ENCODINGS = [
  '%',
  '%zz',
  '%0',
  '%00',
  '%C0%AF',
  '%ED%A0%80',
  '%FF%FE',
  '%25%32%35',
  '+',
  '%2B',
  '#',
  '%E2%80%AE',
  '%EF%BF%BF',
  '%F4%90%80%80',
  '&',
  '=',
  '==',
  '&&&',
  ';'
]

/** Percent-encoded UTF-8; a lone surrogate (which encodeURIComponent refuses) as the bytes Buffer makes of it. */
function encode(text: string): string {
  try {
    return encodeURIComponent(text)
  } catch {
    return [...Buffer.from(text, 'utf8')].map(byte => `%${byte.toString(16).padStart(2, '0').toUpperCase()}`).join('')
  }
}

function queryString(rng: Rng, refs: InstanceRef[], level: Level): string {
  // Half the cases are well-formed searches (matching keys only), so the matching itself is exercised and not
  // only the checks in front of it.
  const matching = rng.chance(0.5)
  const count = matching ? rng.range(1, 3) : rng.pick([0, 1, 1, 2, 3, 5])
  const parts: string[] = []
  for (let i = 0; i < count; i++) {
    const [key, value] = matching ? matchingParameter(rng, refs, level) : parameter(rng, refs)
    parts.push(`${encode(key)}=${encode(value)}`)
    // The same key again: an array where a string is expected.
    if (rng.chance(0.1)) parts.push(`${encode(key)}=${encode(valueFor(key, rng, refs))}`)
  }
  if (!matching && rng.chance(0.2)) {
    const broken = rng.pick(BROKEN_ENCODINGS)
    const at = rng.int(parts.length + 1)
    parts.splice(at, 0, rng.chance(0.5) ? `${rng.pick(MATCH_KEYS)}=${broken}` : broken)
  }
  return parts.join('&')
}

function route(rng: Rng, refs: InstanceRef[]): { path: string; level: Level } {
  const ref = rng.pick(refs)
  const odd = (uid: string): string =>
    rng.chance(0.8)
      ? encode(uid)
      : rng.pick(['*', '..', '%2e%2e', 'X'.repeat(5000), '%00', '1.2.3', `${encode(uid)}%20`, '', '%'])
  const roll = rng.int(20)
  if (roll < 12 || ref === undefined) return { path: '/dicom-web/studies', level: 'study' }
  if (roll < 17) return { path: `/dicom-web/studies/${odd(ref.study)}/series`, level: 'series' }
  return { path: `/dicom-web/studies/${odd(ref.study)}/series/${odd(ref.series)}/instances`, level: 'instance' }
}

function qidoKind(): Kind {
  let refs: InstanceRef[] = []
  return {
    name: 'qido',
    async setup(target: Target, ledger: Ledger, say) {
      await stowKnownGood(target, ledger, say)
      refs = ledger.known.map(({ study, series, sop }) => ({ study, series, sop }))
    },
    async run(target, rng): Promise<CaseResult> {
      const where = route(rng, refs)
      const query = queryString(rng, refs, where.level)
      const path = `${where.path}${query === '' ? '' : `?${query}`}`
      const accept = rng.chance(0.9) ? 'application/dicom+json' : rng.pick(ACCEPTS)
      const shown = path.length > 300 ? `${path.slice(0, 300)}… (${path.length} characters)` : path
      const what = `GET ${shown} (Accept: ${accept})`
      const answer = await target.request(path, { headers: accept === '' ? {} : { accept } })
      if (answer.kind === 'timeout') return { outcome: 'hung', what, why: 'no answer in 5 s' }
      if (answer.kind === 'failed') return { outcome: 'unclear', what, why: `request failed: ${answer.message}` }
      const start = answer.body.toString('utf8', 0, 160)
      if (answer.status >= 500) return { outcome: 'unclear', what, why: `HTTP ${answer.status}: ${start}` }
      if (answer.status >= 400) {
        const why = `${answer.status} ${errorCodeOf(answer)}`
        if (isDocumentedError(answer)) return { outcome: 'refused', what, why }
        return { outcome: 'unclear', what, why: `HTTP ${answer.status} without the documented error body: ${start}` }
      }
      if (answer.status === 204) return { outcome: 'accepted', what }
      try {
        if (!Array.isArray(JSON.parse(answer.body.toString('utf8')))) throw new Error('not an array')
      } catch (error) {
        const why = `HTTP ${answer.status} but not a JSON array: ${(error as Error).message}`
        return { outcome: 'unclear', what, why }
      }
      return { outcome: 'accepted', what }
    }
  }
}

export async function runQidoFuzz(options: KindOptions): Promise<KindTally> {
  return await runKind(qidoKind(), options)
}

/**
 * Words for a case's priors (protocol/api/priors.ts), shared by the priors list and the report's COMPARISON
 * offers: the study's date as people write it, its name, where it stands, how the PACS search is going, and
 * the comparison sentence ("Compared with CT HEAD of 2024-03-01."). Pure: no DOM, tested in Node.
 */
import type { CasePriors, PriorStudy } from '../../../protocol/api/index.ts'

/**
 * A DICOM DA (YYYYMMDD, PS3.5 6.2) as YYYY-MM-DD. The old ACR-NEMA form YYYY.MM.DD that some archives still
 * send is read too; anything else (empty, a range, a partial date) is returned as it was, trimmed, so the reader
 * sees what the PACS said rather than a wrong date.
 */
export function formatDicomDate(da: string): string {
  const text = da.trim()
  const match = /^(\d{4})\.?(\d{2})\.?(\d{2})$/.exec(text)
  if (match === null) return text
  const [, year, month, day] = match as unknown as [string, string, string, string]
  const m = Number(month)
  const d = Number(day)
  if (m < 1 || m > 12 || d < 1 || d > 31) return text
  return `${year}-${month}-${day}`
}

/**
 * What a radiologist calls the study: its description, led by its modality when the description does not
 * already name it ("CT HEAD WO CONTRAST"; "HEAD WO" from a CT is "CT HEAD WO"); without a description, the
 * modality and body part; without those, "the prior study".
 */
export function studyName(prior: Pick<PriorStudy, 'studyDescription' | 'modalities' | 'bodyPart'>): string {
  const description = prior.studyDescription.trim().replace(/\s+/g, ' ')
  const modalities = prior.modalities.map(m => m.trim().toUpperCase()).filter(m => m !== '')
  const modality = modalities.join('/')
  if (description === '') return [modality, prior.bodyPart.trim()].filter(m => m !== '').join(' ') || 'the prior study'
  const words = new Set(description.toUpperCase().split(/[\s/,;:()-]+/))
  if (modality === '' || modalities.some(m => words.has(m))) return description
  return `${modality} ${description}`
}

/** The sentence the report's COMPARISON section takes for a prior: "Compared with CT HEAD of 2024-03-01." */
export function comparisonSentence(
  prior: Pick<PriorStudy, 'studyDescription' | 'modalities' | 'bodyPart' | 'studyDate'>
): string {
  const date = formatDicomDate(prior.studyDate)
  return `Compared with ${studyName(prior)}${date === '' ? ' (date not recorded)' : ` of ${date}`}.`
}

/** Where a prior stands, for the list: found (in the PACS), retrieving, shared, local, or failed. */
export type PriorStanding = 'found' | 'retrieving' | 'shared' | 'local' | 'failed'

export function priorStanding(prior: Pick<PriorStudy, 'state' | 'local'>): PriorStanding {
  if (prior.state === 'failed') return 'failed'
  if (prior.local) return 'local'
  return prior.state
}

/** The standing in words, with the reason of a failure. */
export function standingText(prior: Pick<PriorStudy, 'state' | 'local' | 'error'>): string {
  switch (priorStanding(prior)) {
    case 'found':
      return 'found in the PACS, waiting to be retrieved'
    case 'retrieving':
      return 'retrieving from the PACS'
    case 'shared':
      return 'shared, arriving on this node'
    case 'local':
      return 'local, ready to open'
    case 'failed':
      return `failed: ${prior.error ?? 'no reason given'}`
  }
}

/** A time of day as HH:MM:SS in the viewer's time zone (the node sends ISO 8601). */
export function clockTime(iso: string, timeZone?: string): string {
  const at = new Date(iso)
  if (Number.isNaN(at.getTime())) return iso
  return at.toLocaleTimeString('en-GB', { hour12: false, ...(timeZone === undefined ? {} : { timeZone }) })
}

/**
 * How the search of the site's PACS for this case's priors stands, in one line. A reader's node names no PACS
 * (`pacs` null): the site searches its own, and the reader waits for its list.
 */
export function searchText(search: CasePriors['search'], count: number, timeZone?: string): string {
  const pacs = search.pacs ?? "the site's PACS"
  switch (search.state) {
    case 'none':
      return "The case's site names no PACS: no priors were looked for."
    case 'pending':
      return search.pacs === null ? "Waiting for the site's search of its PACS…" : `Waiting to ask ${pacs} for priors…`
    case 'querying':
      return `Asking ${pacs} for priors…`
    case 'retrying': {
      const when = search.nextAttemptAt === null ? 'soon' : `at ${clockTime(search.nextAttemptAt, timeZone)}`
      const tries = search.attempts === 1 ? '1 attempt' : `${search.attempts} attempts`
      const why = search.lastError === null ? '' : `: ${search.lastError}`
      return `PACS unreachable, retrying ${when} (${tries}${why})`
    }
    case 'done':
      return count === 0
        ? `No relevant priors in ${pacs}.`
        : `${count} ${count === 1 ? 'prior' : 'priors'} from ${pacs}`
    case 'failed':
      return `The search of ${pacs} failed${search.lastError === null ? '' : `: ${search.lastError}`}`
  }
}

/** Whether the list can stop asking: the search has ended and every prior is on this node or failed. */
export function priorsSettled(priors: CasePriors): boolean {
  const ended = priors.search.state === 'none' || priors.search.state === 'done' || priors.search.state === 'failed'
  return ended && priors.priors.every(p => p.local || p.state === 'failed')
}

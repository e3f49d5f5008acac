/**
 * Where each case's search of the PACS for priors stands, on disk at the case's site (HOME/priors/CASEID.json,
 * written whole and renamed into place at each step), so a node that restarts resumes the searches it had
 * under way at their next attempt, and knows which studies in its archive it retrieved as priors (never
 * cases of their own).
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import type { CasePriors, PriorStudy } from '../../protocol/api/priors.ts'
import { isCaseId, type PriorEntry } from '../../protocol/collab/records.ts'
import { toJsonText, writeFileAtomic } from '../files.ts'
import type { Logger } from '../log.ts'

export const PRIORS_DIR = 'priors'

/** One case's search, as kept. */
export interface PriorSearch {
  caseId: string
  studyInstanceUid: string
  /** the PACS asked, AE@HOST:PORT */
  pacs: string
  state: CasePriors['search']['state']
  attempts: number
  lastError: string | null
  nextAttemptAt: string | null
  startedAt: string
  /** the priors record went out to the readers */
  published: boolean
  priors: Array<Omit<PriorStudy, 'local'>>
}

export class PriorSearches {
  readonly #dir: string
  readonly #log: Logger
  readonly #searches = new Map<string, PriorSearch>()

  constructor(home: string, log: Logger) {
    this.#dir = join(home, PRIORS_DIR)
    this.#log = log
  }

  /** Reads every search kept; a file that does not parse is logged and left alone. */
  async load(): Promise<PriorSearch[]> {
    let names: string[]
    try {
      names = await fs.readdir(this.#dir)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw error
    }
    for (const name of names) {
      const caseId = name.replace(/\.json$/, '')
      if (!name.endsWith('.json') || !isCaseId(caseId)) continue
      try {
        const search = JSON.parse(await fs.readFile(join(this.#dir, name), 'utf8')) as PriorSearch
        if (search.caseId !== caseId || !Array.isArray(search.priors)) throw new Error('not a prior search')
        this.#searches.set(caseId, search)
      } catch (error) {
        this.#log.warn(
          { event: 'prior-search-unreadable', file: join(this.#dir, name), error: (error as Error).message },
          'a kept prior search does not read; it is left as it is and not resumed'
        )
      }
    }
    return [...this.#searches.values()]
  }

  get(caseId: string): PriorSearch | undefined {
    return this.#searches.get(caseId)
  }

  all(): IterableIterator<PriorSearch> {
    return this.#searches.values()
  }

  /** Keeps `search` (in memory at once, on disk when this resolves). */
  async save(search: PriorSearch): Promise<void> {
    this.#searches.set(search.caseId, search)
    await fs.mkdir(this.#dir, { recursive: true })
    await writeFileAtomic(join(this.#dir, `${search.caseId}.json`), toJsonText(search))
  }
}

/** The entries of a case's `priors` record: the priors shared with its readers, or given up on, with why. */
export function recordEntries(search: PriorSearch): PriorEntry[] {
  return search.priors
    .filter(p => p.state === 'shared' || p.state === 'failed')
    .map(p => ({
      studyUid: p.studyInstanceUid,
      studyDate: /^\d{8}$/.test(p.studyDate) ? p.studyDate : '',
      studyDescription: p.studyDescription.slice(0, 64),
      modalities: p.modalities,
      bodyPart: p.bodyPart.slice(0, 64),
      accessionNumber: p.accessionNumber.slice(0, 16),
      instances: p.instances,
      state: p.state === 'shared' ? 'shared' : 'failed',
      error: (p.error ?? '').slice(0, 256)
    }))
}

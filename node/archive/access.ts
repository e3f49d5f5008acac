/**
 * Reading the archive on someone's behalf, recorded in the audit trail: a search is 110112 Query (with the
 * keys it used, never their values: they may be patient names), a retrieval 110104 Instances Transferred
 * (whole files) or 110103 Instances Accessed (metadata, frames, bulk data). DICOMweb reads through here, so
 * any other way in that reads for someone records it the same way.
 */
import type { AuditActor, AuditLog } from '../audit/log.ts'
import { RadmeshError } from '../errors.ts'
import type { Archive, InstanceRecord } from './archive.ts'
import { type Level, matches, type QidoQuery } from './qido.ts'

/** A study, one of its series, or one instance, by UID. */
export interface StudyPath {
  study: string
  series?: string | undefined
  instance?: string | undefined
}

/** How a retrieval is recorded: the event, and what was read (e.g. "WADO-RS frames 1,2"). */
export interface Retrieval {
  event: 'instancesTransferred' | 'instancesAccessed'
  detail: string
}

type Candidate = Record<string, string | string[] | number | undefined>

export interface StudyAccessComponents {
  archive: Pick<Archive, 'instance' | 'instancesOf'>
  audit: Pick<AuditLog, 'append'>
}

export class StudyAccess {
  private readonly c: StudyAccessComponents

  constructor(components: StudyAccessComponents) {
    this.c = components
  }

  /**
   * The page (`offset`, `limit`) of the `candidates` that match `query`; the search is audited as `via` (the
   * way in, e.g. "QIDO") with the keys it used and how many records it found.
   */
  async search<T extends Candidate>(
    level: Level,
    query: QidoQuery,
    candidates: AsyncIterable<T>,
    by: { actor: AuditActor; via: string; study?: string }
  ): Promise<T[]> {
    const matched: T[] = []
    for await (const record of candidates) {
      if (matches(query, record)) matched.push(record)
    }
    const end = query.limit === undefined ? undefined : query.offset + query.limit
    const page = matched.slice(query.offset, end)
    const keys = query.filters.map(f => f.tag).join(',') || 'no filter'
    await this.c.audit.append({
      event: 'query',
      action: 'E',
      outcome: 0,
      actor: by.actor,
      ...(by.study === undefined ? {} : { study: by.study }),
      detail: `${by.via} ${level} by ${keys}: ${page.length} result(s)`
    })
    return page
  }

  /** The instances a path names, in UID order; RADMESH_NOT_FOUND when it names none here. */
  async instances(path: StudyPath): Promise<InstanceRecord[]> {
    const list: InstanceRecord[] = []
    if (path.instance !== undefined) {
      const instance = await this.c.archive.instance(path.instance)
      const inPath =
        instance !== undefined &&
        instance.studyUid === path.study &&
        (path.series === undefined || instance.seriesUid === path.series)
      if (inPath) list.push(instance)
    } else {
      for await (const instance of this.c.archive.instancesOf(path.study, path.series)) list.push(instance)
    }
    if (list.length === 0) {
      const level = path.instance !== undefined ? 'instance' : path.series !== undefined ? 'series' : 'study'
      throw new RadmeshError('RADMESH_NOT_FOUND', `no ${level} ${path.instance ?? path.series ?? path.study} here`)
    }
    return list
  }

  /**
   * Reads what a path names for `actor`: `read` is given its instances and what it returns is the answer; the
   * retrieval is audited once `read` succeeded (a frame or bulk data the instance does not hold is not).
   */
  async retrieve<T>(
    path: StudyPath,
    actor: AuditActor,
    retrieval: Retrieval,
    read: (instances: InstanceRecord[]) => T | Promise<T>
  ): Promise<T> {
    const list = await this.instances(path)
    const result = await read(list)
    await this.c.audit.append({
      event: retrieval.event,
      action: 'R',
      outcome: 0,
      actor,
      study: path.study,
      ...(path.series === undefined ? {} : { series: path.series }),
      instances: list.map(i => i.sopUid),
      detail: retrieval.detail
    })
    return result
  }
}

/**
 * A de-identified second opinion: the site's study copied through the profile (deidentify.ts), the copy stored
 * in the site's own archive as a new study (through `store`, so it is validated, sealed and audited like any
 * object that comes in), then shared with the readers named, as any study is. Every instance is de-identified
 * before the first is stored: a study with one refused instance (burned-in annotation, say) leaves nothing
 * behind. The mapping back to the original (`uidMap`), with the members the copy is for, is returned to the
 * site's caller and kept sealed at the site (mappings.ts) before the copy is stored, so the site's workflow knows
 * the copy for what it is when it settles (a second-opinion case for those members only, never one routed by
 * the site's rules); it is never shared.
 */
import type { Archive } from '../archive/archive.ts'
import type { AuditActor } from '../audit/log.ts'
import { RadmeshError } from '../errors.ts'
import type { ShareResult } from '../exchange/share.ts'
import { type DeidentifiedInstance, Deidentifier, type DeidentifyOptions } from './deidentify.ts'
import type { DeidMappings } from './mappings.ts'

export interface DeidentifiedShareComponents {
  archive: Pick<Archive, 'instancesOf' | 'read' | 'store'>
  share: (studyUid: string, peerIds: string[], actor: AuditActor) => Promise<ShareResult>
  /** where the way back is kept; without it, only the caller has it */
  mappings?: Pick<DeidMappings, 'keep'>
}

export interface DeidentifiedShare extends ShareResult {
  /** the study the copy was made of: stays at the site */
  originalStudyUid: string
  /** original UID to the copy's, for the report on the copy to find its way back: stays at the site */
  uidMap: ReadonlyMap<string, string>
  /** days the copy's dates were moved by (0 unless `retainDates` is 'modified') */
  dateOffsetDays: number
}

/** Copies `studyUid` de-identified into the archive and shares the copy with `peerIds`. */
export async function shareDeidentified(
  components: DeidentifiedShareComponents,
  studyUid: string,
  peerIds: string[],
  options: DeidentifyOptions,
  actor: AuditActor
): Promise<DeidentifiedShare> {
  const { archive, share, mappings } = components
  const deidentifier = new Deidentifier(options)
  const copies: DeidentifiedInstance[] = []
  for await (const instance of archive.instancesOf(studyUid)) {
    copies.push(deidentifier.instance(await archive.read(instance)))
  }
  const copy = copies[0]
  if (copy === undefined) throw new RadmeshError('RADMESH_NOT_FOUND', `this node's archive holds no study ${studyUid}`)
  const dateOffsetDays = options.retainDates === 'modified' ? deidentifier.dateOffsetDays : 0
  await mappings?.keep({
    copyStudyUid: copy.studyInstanceUid,
    originalStudyUid: studyUid,
    uidMap: [...deidentifier.uidMap],
    dateOffsetDays,
    madeAt: new Date().toISOString(),
    sharedWith: [...peerIds].sort()
  })
  for (const instance of copies) await archive.store(instance.bytes, actor)
  const shared = await share(copy.studyInstanceUid, peerIds, actor)
  return { ...shared, originalStudyUid: studyUid, uidMap: deidentifier.uidMap, dateOffsetDays }
}

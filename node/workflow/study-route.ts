/**
 * The facts a site's routing rules look at (worklist/routing.ts), read from the archive: the study's
 * modalities and description, and the first Body Part Examined of its series. A study routed at its first
 * instance is routed on what that instance says.
 */
import type { Priority } from '../../protocol/collab/records.ts'
import type { Archive, StudyRecord } from '../archive/archive.ts'
import { route, type RoutingConfig } from '../worklist/routing.ts'

/** A study attribute as text (a multi-valued one joined by backslashes), '' when absent. */
export const attributeText = (study: StudyRecord, tag: string): string => {
  const value = study.attributes[tag]
  return typeof value === 'string' ? value : Array.isArray(value) ? value.map(String).join('\\') : ''
}

export async function routeStudy(
  archive: Pick<Archive, 'seriesOf'>,
  study: StudyRecord,
  routing: RoutingConfig
): Promise<{ bodyPart: string; subspecialty: string; priority: Priority }> {
  let bodyPart = ''
  for await (const series of archive.seriesOf(study.studyUid)) {
    const part = series.attributes['00180015']
    if (typeof part === 'string' && part !== '') {
      bodyPart = part
      break
    }
  }
  const facts = { modalities: study.modalities, bodyPart, description: attributeText(study, '00081030') }
  return { bodyPart, ...route(facts, routing) }
}

/** How much of a study version is in this node's archive, and how its fetch stands. */
import type { Archive } from '../archive/archive.ts'
import type { OpenVersion } from './versions.ts'

export type FetchState = 'idle' | 'finding' | 'fetching' | 'complete' | 'failed' | 'stopped'

export interface Availability {
  instancesTotal: number
  instancesLocal: number
  bytesTotal: number
  bytesLocal: number
  complete: boolean
  state: FetchState
  error?: string
  /** members chunks came from in this fetch, with bytes */
  sources?: Record<string, number>
}

/** The instances of `version` whole in the archive (the same SHA-256), with `state` unless all are. */
export async function availabilityOf(
  version: OpenVersion,
  archive: Pick<Archive, 'instance'>,
  state: FetchState
): Promise<Availability> {
  let instancesLocal = 0
  let bytesLocal = 0
  for (const instance of version.index.instances) {
    const record = await archive.instance(instance.sopUid)
    if (record !== undefined && record.sha256 === instance.sha256) {
      instancesLocal++
      bytesLocal += instance.size
    }
  }
  const { instanceCount, bytes } = version.manifest
  const complete = instancesLocal === instanceCount
  return {
    instancesTotal: instanceCount,
    instancesLocal,
    bytesTotal: bytes,
    bytesLocal,
    complete,
    state: complete ? 'complete' : state
  }
}

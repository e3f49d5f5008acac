/**
 * Instances that must survive a fuzz run: each acknowledged one is retrieved through WADO-RS and its SHA-256
 * recorded, then checked again every N cases and at the end (gone or altered is a loss). What a case made the
 * node acknowledge is first opened as a viewer would, metadata and frames, each within the answer time.
 */
import { createHash } from 'node:crypto'
import { singlePart, type Target } from './target.ts'

export interface InstanceRef {
  study: string
  series: string
  sop: string
}
interface Recorded extends InstanceRef {
  name: string
  sha256: string
}

export const instancePath = ({ study, series, sop }: InstanceRef): string =>
  `/dicom-web/studies/${encodeURIComponent(study)}/series/${encodeURIComponent(series)}` +
  `/instances/${encodeURIComponent(sop)}`

const ACCEPT_DICOM = { accept: 'multipart/related; type="application/dicom"' }
const ACCEPT_JSON = { accept: 'application/dicom+json' }
const ACCEPT_FRAMES = { accept: 'multipart/related; type="application/octet-stream"' }

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')

/** Acknowledged instances and the SHA-256 of what WADO-RS gave for them; checked again later. */
export class Ledger {
  readonly known: Recorded[] = []
  readonly accepted: Recorded[] = []
  readonly #reported = new Set<string>()
  static readonly MAX_TRACKED = 2_000

  /** Retrieves an instance and records its hash; undefined when it cannot be retrieved. */
  async record(target: Target, ref: InstanceRef, name: string, known: boolean): Promise<Recorded | undefined> {
    const bytes = singlePart(await target.request(instancePath(ref), { headers: ACCEPT_DICOM }))
    if (bytes === undefined) return undefined
    const entry = { ...ref, name, sha256: sha256(bytes) }
    if (known) this.known.push(entry)
    else if (this.accepted.length < Ledger.MAX_TRACKED) this.accepted.push(entry)
    return entry
  }

  /** What is gone or altered now (each instance reported once). */
  async check(target: Target, all: boolean): Promise<string[]> {
    const lost: string[] = []
    for (const entry of all ? [...this.known, ...this.accepted] : this.known) {
      if (this.#reported.has(entry.sop)) continue
      const answer = await target.request(instancePath(entry), { headers: ACCEPT_DICOM }, 30_000)
      const bytes = singlePart(answer)
      const why =
        bytes === undefined
          ? `gone (${answer.kind === 'answer' ? `HTTP ${answer.status}` : answer.kind})`
          : sha256(bytes) !== entry.sha256
            ? 'altered (SHA-256 differs)'
            : undefined
      if (why === undefined) continue
      this.#reported.add(entry.sop)
      lost.push(`${entry.name} (SOP ${entry.sop}) ${why}`)
    }
    return lost
  }
}

/**
 * Opens what a case made the node acknowledge, as a viewer would: metadata, the frames and bulk data its
 * metadata points to. Each must answer within 5 s; a 5xx is unclear. Then records it for the loss checks.
 */
export async function openAccepted(
  target: Target,
  ledger: Ledger,
  refs: InstanceRef[],
  name: string
): Promise<{ hung?: string; unclear?: string }> {
  for (const ref of refs) {
    const path = instancePath(ref)
    const metadata = await target.request(`${path}/metadata`, { headers: ACCEPT_JSON })
    if (metadata.kind === 'timeout') return { hung: `GET ${path}/metadata: no answer in 5 s` }
    if (metadata.kind === 'failed') return { unclear: `GET …/metadata failed: ${metadata.message}` }
    if (metadata.status >= 500) return { unclear: `GET …/metadata answered ${metadata.status}` }
    const studyPath = `/dicom-web/studies/${encodeURIComponent(ref.study)}/metadata`
    const study = await target.request(studyPath, { headers: ACCEPT_JSON })
    if (study.kind === 'timeout') return { hung: 'GET study metadata: no answer in 5 s' }
    if (study.kind === 'answer' && study.status >= 500) {
      return { unclear: `GET study metadata answered ${study.status}` }
    }
    const uris = metadata.status === 200 ? bulkUris(metadata.body).slice(0, 4) : []
    if (metadata.status === 200 && uris.length === 0) uris.push(`${target.node.http}${path}/frames/1`)
    for (const uri of uris) {
      const relative = uri.replace(/^https?:\/\/[^/]+/, '')
      const frames = await target.request(relative, { headers: ACCEPT_FRAMES })
      if (frames.kind === 'timeout') return { hung: `GET ${relative.slice(0, 120)}: no answer in 5 s` }
      if (frames.kind === 'answer' && frames.status >= 500) {
        return { unclear: `GET …${relative.slice(-40)} answered ${frames.status}` }
      }
    }
    await ledger.record(target, ref, name, false)
  }
  return {}
}

/** Every BulkDataURI in a DICOM JSON answer (the frames first). */
function bulkUris(body: Buffer): string[] {
  const uris: string[] = []
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) {
      for (const item of value) visit(item)
    } else if (value !== null && typeof value === 'object') {
      for (const [key, inner] of Object.entries(value)) {
        if (key === 'BulkDataURI' && typeof inner === 'string') uris.push(inner)
        else visit(inner)
      }
    }
  }
  try {
    visit(JSON.parse(body.toString('utf8')))
  } catch {}
  return uris.sort((a, b) => Number(b.includes('/frames/')) - Number(a.includes('/frames/')))
}

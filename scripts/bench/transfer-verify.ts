/**
 * A radmesh transfer for the benchmarks that time one (transfer, its two-holder run, relay): a reader's fetch
 * waited for until complete, the check that the reader lists every instance the site lists and a sample of
 * them is byte-identical on both, and what an unexpected API answer means.
 */
import { createHash } from 'node:crypto'
import type { Availability } from '../../protocol/api/studies.ts'
import { parseMultipartRelated } from '../../protocol/dicomweb/multipart.ts'
import type { GeneratedStudy } from '../generate-ct.ts'
import type { StartedNode } from '../lib/node-process.ts'

/** instances whose bytes are compared between site and reader after each radmesh run */
export const VERIFY_SAMPLE = 10
/** how often a reader's availability is polled while it fetches */
const POLL_MS = 20
/** a fetch not complete by then has failed */
const FETCH_TIMEOUT_MS = 600_000

/** A radmesh API answer that is not the expected status: a 404 "no route" means the API is not there yet. */
export function unexpected(what: string, status: number, body: unknown): Error {
  const text = JSON.stringify(body).slice(0, 300)
  if (status === 404 && /no route|Route .* not found/.test(text))
    return new Error(`${what} answered 404: the radmesh exchange API is not there yet (${text})`)
  return new Error(`${what} answered ${status}: ${text}`)
}

/** The instances a node lists for the study (QIDO-RS, series by series): SOP Instance UID -> Series Instance UID. */
async function instancesOf(study: GeneratedStudy, node: StartedNode): Promise<Map<string, string>> {
  const studyUid = study.studyInstanceUid
  const instances = new Map<string, string>()
  for (const series of study.series) {
    const response = await node.fetch(`/dicom-web/studies/${studyUid}/series/${series.seriesInstanceUid}/instances`)
    if (!response.ok)
      throw new Error(`QIDO instances of series ${series.seriesInstanceUid} answered ${response.status}`)
    const list = (await response.json()) as Array<Record<string, { Value?: string[] }>>
    for (const instance of list) instances.set(instance['00080018']?.Value?.[0] ?? '', series.seriesInstanceUid)
  }
  return instances
}

/** SHA-256 of the one instance a WADO-RS instance retrieve returns. */
async function instanceHash(studyUid: string, node: StartedNode, seriesUid: string, sopUid: string): Promise<string> {
  const response = await node.fetch(`/dicom-web/studies/${studyUid}/series/${seriesUid}/instances/${sopUid}`, {
    headers: { accept: 'multipart/related; type="application/dicom"' }
  })
  if (!response.ok) throw new Error(`WADO-RS ${sopUid} answered ${response.status}`)
  const parts = parseMultipartRelated(
    new Uint8Array(await response.arrayBuffer()),
    response.headers.get('content-type') ?? ''
  )
  if (parts.length !== 1) throw new Error(`WADO-RS ${sopUid} returned ${parts.length} parts`)
  return createHash('sha256')
    .update((parts[0] as { body: Uint8Array }).body)
    .digest('hex')
}

/** The reader lists every instance the site lists, and a random sample of them is byte-identical on both. */
export async function verify(study: GeneratedStudy, site: StartedNode, reader: StartedNode): Promise<void> {
  const [onSite, onReader] = await Promise.all([instancesOf(study, site), instancesOf(study, reader)])
  if (onSite.size !== study.files.length)
    throw new Error(`the site lists ${onSite.size} of ${study.files.length} instances`)
  const missing = [...onSite.keys()].filter(sop => !onReader.has(sop))
  if (onReader.size !== onSite.size || missing.length > 0)
    throw new Error(`the reader lists ${onReader.size} instances, ${missing.length} of the site's missing`)
  const pool = [...onSite]
  for (let n = 0; n < VERIFY_SAMPLE && pool.length > 0; n++) {
    const [sop, series] = pool.splice(Math.floor(Math.random() * pool.length), 1)[0] as [string, string]
    const [a, b] = await Promise.all([
      instanceHash(study.studyInstanceUid, site, series, sop),
      instanceHash(study.studyInstanceUid, reader, series, sop)
    ])
    if (a !== b) throw new Error(`instance ${sop} differs between site and reader`)
  }
}

/** Asks `reader` to fetch the study and waits until it is complete; seconds from the ask. */
export async function fetchStudy(reader: Pick<StartedNode, 'api'>, studyUid: string): Promise<number> {
  const started = performance.now()
  const fetched = await reader.api('POST', `/api/studies/${studyUid}/fetch`)
  if (fetched.status !== 202) throw unexpected('POST fetch on the reader', fetched.status, fetched.body)
  const deadline = Date.now() + FETCH_TIMEOUT_MS
  for (;;) {
    const { status, body } = await reader.api<Availability>('GET', `/api/studies/${studyUid}/availability`)
    if (status !== 200) throw unexpected('GET availability on the reader', status, body)
    if (body.state === 'failed') throw new Error(`the fetch failed: ${body.error ?? 'no reason given'}`)
    if (body.complete) return (performance.now() - started) / 1000
    if (Date.now() > deadline) {
      throw new Error(`not complete after ${FETCH_TIMEOUT_MS / 1000} s: ${body.instancesLocal} instances in`)
    }
    await new Promise(resolve => setTimeout(resolve, POLL_MS))
  }
}

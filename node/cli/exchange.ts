/**
 * `radmesh share STUDYUID --to PEERID… [--deidentify …]` and `radmesh fetch STUDYUID` (with a progress bar until
 * the study is complete). Both talk to the node running on HOME. A de-identified share first prints
 * `de-identified copy of ORIGINAL: COPY`, COPY being the new Study Instance UID the members fetch.
 */
import type { Availability, Shared } from '../../protocol/api/studies.ts'
import { RadmeshError } from '../errors.ts'
import { parse, required } from './args.ts'
import { connectToNode } from './client.ts'
import { Progress } from './progress.ts'

const SHARE =
  'radmesh share --home HOME STUDYUID --to PEERID… ' +
  '[--deidentify [--retain-dates modified|full] [--retain-patient-characteristics] [--burned-in-clean]]'
const FETCH = 'radmesh fetch --home HOME STUDYUID [--timeout SECONDS]'
const POLL_MS = 250

const SHARE_OPTIONS = {
  home: { type: 'string' },
  to: { type: 'string', multiple: true },
  deidentify: { type: 'boolean' },
  'retain-dates': { type: 'string' },
  'retain-patient-characteristics': { type: 'boolean' },
  'burned-in-clean': { type: 'boolean' }
} as const

/** The de-identification options of the share request; the profile's options need `--deidentify`. */
function deidentifyBody(values: Record<string, unknown>): Record<string, unknown> {
  const retainDates = values['retain-dates']
  const characteristics = values['retain-patient-characteristics'] === true
  const clean = values['burned-in-clean'] === true
  if (values['deidentify'] !== true) {
    if (retainDates !== undefined || characteristics || clean) {
      throw new RadmeshError('RADMESH_USAGE', `the de-identification options need --deidentify; usage: ${SHARE}`)
    }
    return {}
  }
  if (retainDates !== undefined && retainDates !== 'modified' && retainDates !== 'full') {
    throw new RadmeshError('RADMESH_USAGE', `--retain-dates is modified or full; usage: ${SHARE}`)
  }
  return {
    deidentify: true,
    ...(retainDates === undefined ? {} : { retainDates }),
    retainPatientCharacteristics: characteristics,
    burnedInAnnotationClean: clean
  }
}

function studyUidFrom(positionals: string[], usage: string): string {
  if (positionals.length !== 1) throw new RadmeshError('RADMESH_USAGE', `give one Study Instance UID; usage: ${usage}`)
  return positionals[0] as string
}

export async function shareCommand(argv: string[], print: (line: string) => void): Promise<void> {
  const { values, positionals } = parse(argv, SHARE_OPTIONS, SHARE, true)
  const home = required(values, 'home', SHARE)
  const studyUid = studyUidFrom(positionals, SHARE)
  const to = (values['to'] as string[] | undefined) ?? []
  if (to.length === 0) {
    throw new RadmeshError('RADMESH_USAGE', `name at least one member with --to PEERID; usage: ${SHARE}`)
  }
  const deidentify = deidentifyBody(values)
  const client = await connectToNode(home)
  const path = `/api/studies/${encodeURIComponent(studyUid)}/share`
  const result = await client.request<Shared>('POST', path, { peerIds: to, ...deidentify })
  const shared = result.studyInstanceUid
  if (shared !== studyUid) print(`de-identified copy of ${studyUid}: ${shared}`)
  for (const recipient of result.recipients) {
    const later = recipient.announced ? '' : ' (not reachable now: it can fetch the study when it connects)'
    print(`shared ${shared} with ${recipient.peerId}${later}`)
  }
}

/** Exits 0 once the study is complete here; 1 when the fetch fails or the timeout passes. */
export async function fetchCommand(argv: string[], print: (line: string) => void): Promise<number> {
  const { values, positionals } = parse(argv, { home: { type: 'string' }, timeout: { type: 'string' } }, FETCH, true)
  const client = await connectToNode(required(values, 'home', FETCH))
  const studyUid = studyUidFrom(positionals, FETCH)
  const timeout = values['timeout'] === undefined ? Number.POSITIVE_INFINITY : Number(values['timeout'])
  if (!(timeout > 0)) throw new RadmeshError('RADMESH_USAGE', `--timeout must be a number of seconds; usage: ${FETCH}`)
  const path = `/api/studies/${encodeURIComponent(studyUid)}`
  let state = await client.request<Availability>('POST', `${path}/fetch`)
  const deadline = Date.now() + timeout * 1000
  let progress: Progress | undefined
  while (!state.complete && state.state !== 'failed' && Date.now() < deadline) {
    if (state.instancesTotal > 0) {
      progress ??= new Progress('fetch', state.instancesTotal, state.bytesTotal, 'instances')
      progress.set(state.instancesLocal, state.bytesLocal)
    }
    await new Promise(resolve => setTimeout(resolve, POLL_MS))
    state = await client.request<Availability>('GET', `${path}/availability`)
  }
  progress?.set(state.instancesLocal, state.bytesLocal)
  progress?.done()
  if (state.complete) {
    print(`${studyUid}: complete, ${state.instancesTotal} instances, ${(state.bytesTotal / 1e6).toFixed(1)} MB`)
    return 0
  }
  const why =
    state.state === 'failed'
      ? (state.error ?? 'the fetch failed')
      : `not complete after ${timeout} s (${state.instancesLocal} of ${state.instancesTotal} instances); ` +
        'the node keeps fetching'
  process.stderr.write(`radmesh: ${studyUid}: ${why}\n`)
  return 1
}

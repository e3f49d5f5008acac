/**
 * `npm run fuzz -- stow`: the dicom kind's mutations sent as STOW-RS parts (whole Part 10 files, meta header
 * included), plus mutations of the multipart/related request itself: boundaries (long, odd, missing, wrong),
 * headers (the request's and the parts'), truncation, many parts, a delimiter inside a part. Each request must
 * be answered within 5 s; a 4xx must carry the documented `{ error: { code, message } }` body (else unclear);
 * what was stored is opened through DICOMweb and checked again later.
 */
import {
  type CaseResult,
  type Kind,
  type KindOptions,
  type KindTally,
  loadSamples,
  runKind,
  type Sample
} from './common.ts'
import { DEFLATED_LE, EXPLICIT_LE, part10File, refreshUids } from './dataset.ts'
import { type InstanceRef, type Ledger, openAccepted } from './ledger.ts'
import { deflateBomb, deflatedVariant } from './deflate.ts'
import { mutateDataset } from './mutate.ts'
import type { Rng } from './rng.ts'
import type { HttpAnswer, Target } from './target.ts'

export const STOW_TYPE = 'application/dicom'
const BCHARS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=?"

export interface StowRequest {
  path: string
  contentType: string
  body: Buffer
}

const contentTypeOf = (boundary: string): string => `multipart/related; type="${STOW_TYPE}"; boundary=${boundary}`

/** A well-formed STOW-RS request of these files. */
export function stowRequest(files: Buffer[], boundary = `radmesh-fuzz-${files.length}-boundary`): StowRequest {
  const head = Buffer.from(`--${boundary}\r\nContent-Type: ${STOW_TYPE}\r\n\r\n`)
  const parts = files.map(file => Buffer.concat([head, file, Buffer.from('\r\n')]))
  return {
    path: '/dicom-web/studies',
    contentType: contentTypeOf(boundary),
    body: Buffer.concat([...parts, Buffer.from(`--${boundary}--\r\n`)])
  }
}

export async function sendStow(target: Target, request: StowRequest): Promise<HttpAnswer> {
  return await target.request(request.path, {
    method: 'POST',
    headers: { 'content-type': request.contentType, accept: 'application/dicom+json' },
    body: request.body as Uint8Array<ArrayBuffer>
  })
}

type DicomJson = Record<string, { Value?: Array<Record<string, { Value?: string[] }>> }>

/** The instances a STOW-RS answer says were stored (their RetrieveURLs). */
export function storedBy(answer: HttpAnswer): InstanceRef[] {
  if (answer.kind !== 'answer' || (answer.status !== 200 && answer.status !== 202)) return []
  try {
    const json = JSON.parse(answer.body.toString('utf8')) as DicomJson
    return (json['00081199']?.Value ?? []).flatMap(item => {
      const url = item['00081190']?.Value?.[0] ?? ''
      const match = /\/studies\/([^/]+)\/series\/([^/]+)\/instances\/([^/]+)$/.exec(url)
      if (match === null) return []
      const [, study, series, sop] = match.map(part => decodeURIComponent(part)) as [string, string, string, string]
      return [{ study, series, sop }]
    })
  } catch {
    return []
  }
}

/** A 4xx with the documented error body: a clear refusal. */
export function isDocumentedError(answer: HttpAnswer): boolean {
  if (answer.kind !== 'answer') return false
  try {
    const body = JSON.parse(answer.body.toString('utf8')) as { error?: { code?: unknown; message?: unknown } }
    return typeof body.error?.code === 'string' && typeof body.error.message === 'string'
  } catch {
    return false
  }
}

/** The code of a documented error body. */
export function errorCodeOf(answer: HttpAnswer): string {
  if (answer.kind !== 'answer') return answer.kind
  try {
    return String((JSON.parse(answer.body.toString('utf8')) as { error?: { code?: unknown } }).error?.code)
  } catch {
    return '?'
  }
}

/** How an HTTP answer counts: stored instances are returned to be opened. */
export function classify(answer: HttpAnswer, what: string): CaseResult {
  if (answer.kind === 'timeout') return { outcome: 'hung', what, why: 'no answer in 5 s' }
  if (answer.kind === 'failed') return { outcome: 'unclear', what, why: `request failed: ${answer.message}` }
  const start = answer.body.toString('utf8', 0, 160)
  if (answer.status >= 500) return { outcome: 'unclear', what, why: `HTTP ${answer.status}: ${start}` }
  if (answer.status === 200 || answer.status === 202) {
    const accepted = storedBy(answer)
    return accepted.length > 0 ? { outcome: 'accepted', what, accepted } : { outcome: 'refused', what }
  }
  if (answer.status === 409) return { outcome: 'refused', what }
  if (answer.status < 400) return { outcome: 'unclear', what, why: `HTTP ${answer.status}` }
  if (isDocumentedError(answer)) return { outcome: 'refused', what, why: `${answer.status} ${errorCodeOf(answer)}` }
  return { outcome: 'unclear', what, why: `HTTP ${answer.status} without the documented error body: ${start}` }
}

/** Stores the known-good samples through STOW-RS, one request each, and records them. */
export async function stowKnownGood(target: Target, ledger: Ledger, say: (line: string) => void): Promise<Sample[]> {
  const samples = await loadSamples()
  for (const sample of samples.filter(s => s.knownGood)) {
    const answer = await sendStow(target, stowRequest([sample.file]))
    const [ref] = storedBy(answer)
    if (ref === undefined) {
      const why = answer.kind === 'answer' ? `HTTP ${answer.status}` : answer.kind
      say(`known-good ${sample.name} was not stored: ${why}`)
      continue
    }
    if ((await ledger.record(target, ref, sample.name, true)) === undefined) {
      say(`known-good ${sample.name} cannot be retrieved`)
    }
  }
  return samples
}

/** A sample made into one case's file: new UIDs (mostly), then mutated (mostly). */
function caseFile(sample: Sample, rng: Rng, what: string[]): Buffer {
  const file = Buffer.from(sample.file)
  if (sample.knownGood && rng.chance(0.08)) what.push('keeps the known-good UIDs')
  else refreshUids(file, sample, rng)
  const meta = file.subarray(0, sample.datasetOffset)
  const dataset = file.subarray(sample.datasetOffset)
  const roll = rng.int(100)
  const plain = sample.transferSyntaxUid === EXPLICIT_LE && sample.hasMeta
  if (roll < 6 && plain) {
    const bomb = deflateBomb(dataset, rng.pick([64, 256, 1024, 4095]), rng)
    what.push(bomb.what)
    return part10File(bomb.dataset, sample.sopClassUid, sample.sopInstanceUid, DEFLATED_LE)
  }
  if (roll < 10 && plain) {
    const variant = deflatedVariant(dataset, rng)
    what.push(variant.what)
    return part10File(variant.dataset, sample.sopClassUid, sample.sopInstanceUid, DEFLATED_LE)
  }
  if (roll < 18 && sample.hasMeta) {
    const mutated = mutateDataset(Buffer.from(file.subarray(132, sample.datasetOffset)), EXPLICIT_LE, rng)
    what.push(...mutated.what.map(line => `meta ${line}`))
    return Buffer.concat([file.subarray(0, 132), mutated.dataset, dataset])
  }
  if (roll < 21) {
    const at = rng.int(Math.min(file.length, 140))
    what.push(`preamble or DICM prefix damaged at ${at}`)
    const out = Buffer.from(file)
    rng.bytes(rng.range(1, 8)).copy(out, at)
    return out
  }
  if (roll < 80) {
    const mutated = mutateDataset(dataset, sample.transferSyntaxUid, rng)
    what.push(...mutated.what)
    return Buffer.concat([meta, mutated.dataset])
  }
  return file
}

const crlf = (text: string): Buffer => Buffer.from(text.replace(/\n/g, '\r\n'), 'latin1')
const ONE = 'radmesh-fuzz-1-boundary'

const CONTENT_TYPES = [
  `multipart/related; boundary=${ONE}`,
  `multipart/related; type="application/dicom+json"; boundary=${ONE}`,
  `multipart/form-data; boundary=${ONE}`,
  'application/dicom',
  'text/plain',
  '',
  'multipart/related; type=; boundary=',
  `${contentTypeOf(ONE)}; boundary=again`,
  `MULTIPART/RELATED; TYPE="APPLICATION/DICOM"; BOUNDARY=${ONE}`,
  `${contentTypeOf(ONE)}; ${'x=y; '.repeat(2000)}`
]

const PART_HEADERS = (rng: Rng): string =>
  rng.pick([
    '',
    'garbage without a colon\n',
    `Content-Type: ${STOW_TYPE}\nContent-Type: text/plain\n`,
    'Content-Type: text/plain\n',
    `Content-Type: ${STOW_TYPE}; transfer-syntax=1.2.840.10008.1.2.4.50\n`,
    `Content-Type: ${STOW_TYPE}\nContent-Length: 5\n`,
    `Content-Type: ${STOW_TYPE}\nContent-Transfer-Encoding: base64\n`,
    `X-Huge: ${'h'.repeat(rng.pick([1000, 100_000, 2_000_000]))}\n`,
    `Content-Type: ${STOW_TYPE}\n${'X-Many: 1\n'.repeat(10_000)}`,
    ': empty name\n',
    `Content-Type:${STOW_TYPE}\n`
  ])

const ODD_STUDIES = ['1.2.3', 'X'.repeat(3000), '..%2F..%2Fapi', '%00', '*', '1.2.840.10008.1.2', '%C3%A9', '%']

/** Mutations of the multipart/related request around well-formed or mutated files. */
const MULTIPART_MUTATIONS: ReadonlyArray<[string, (files: Buffer[], rng: Rng) => StowRequest]> = [
  [
    'a long boundary',
    (files, rng) => {
      const length = rng.pick([70, 71, 73, 100, 200, 1000, 5000])
      const plain = [...BCHARS.replace(/[ '()+,/:=?]/g, '')]
      let boundary = ''
      while (boundary.length < length) boundary += rng.pick(plain)
      return stowRequest(files, boundary)
    }
  ],
  [
    'an odd boundary',
    (files, rng) => {
      const boundary = rng.pick([
        'a b',
        'x:y=z',
        '"quoted"',
        ' lead',
        'trail ',
        '--',
        '-',
        '\u00e9t\u00e9',
        'a;b',
        'a,b',
        '\\\\',
        'a\tb'
      ])
      const contentType = `multipart/related; type="${STOW_TYPE}"; boundary="${boundary}"`
      return { ...stowRequest(files, boundary), contentType }
    }
  ],
  [
    'no boundary parameter',
    files => ({ ...stowRequest(files), contentType: `multipart/related; type="${STOW_TYPE}"` })
  ],
  ['the header names another boundary', files => ({ ...stowRequest(files), contentType: contentTypeOf('other') })],
  ['another content type', (files, rng) => ({ ...stowRequest(files, ONE), contentType: rng.pick(CONTENT_TYPES) })],
  [
    'no closing delimiter',
    files => {
      const request = stowRequest(files)
      return { ...request, body: request.body.subarray(0, request.body.lastIndexOf('--radmesh')) }
    }
  ],
  [
    'cut short',
    (files, rng) => {
      const request = stowRequest(files)
      return { ...request, body: request.body.subarray(0, rng.int(request.body.length)) }
    }
  ],
  [
    'LF line ends',
    files => {
      const head = Buffer.from(`--${ONE}\nContent-Type: ${STOW_TYPE}\n\n`)
      return { ...stowRequest(files, ONE), body: Buffer.concat([head, ...files, Buffer.from(`\n--${ONE}--\n`)]) }
    }
  ],
  [
    'a preamble and an epilogue',
    (files, rng) => {
      const request = stowRequest(files)
      const body = Buffer.concat([rng.bytes(rng.size(10_000)), crlf('\n'), request.body, rng.bytes(rng.size(10_000))])
      return { ...request, body }
    }
  ],
  ['no part', () => ({ ...stowRequest([]), body: Buffer.from('--radmesh-fuzz-0-boundary--\r\n') })],
  [
    'many parts',
    (files, rng) => {
      const count = rng.pick([2, 10, 100, 1000])
      const small = files.filter(file => file.length < 100_000)
      return stowRequest(
        Array.from({ length: count }, (_, i) => small[i % Math.max(1, small.length)] ?? Buffer.alloc(0))
      )
    }
  ],
  [
    'empty parts',
    (_files, rng) => stowRequest(Array.from({ length: rng.pick([1, 100, 10_000]) }, () => Buffer.alloc(0)))
  ],
  [
    'part headers mangled',
    (files, rng) => {
      const boundary = 'radmesh-fuzz-h-boundary'
      const headers = PART_HEADERS(rng)
      const parts = files.map(file => Buffer.concat([crlf(`--${boundary}\n${headers}\n`), file, crlf('\n')]))
      const body = Buffer.concat([...parts, crlf(`--${boundary}--\n`)])
      return { path: '/dicom-web/studies', contentType: contentTypeOf(boundary), body }
    }
  ],
  [
    'the delimiter inside a part',
    (files, rng) => {
      const file = files[0] ?? Buffer.alloc(0)
      const at = rng.int(file.length)
      const delimiter = Buffer.from(`\r\n--${ONE}${rng.pick(['', '--', '  ', 'x'])}\r\n`)
      return stowRequest([Buffer.concat([file.subarray(0, at), delimiter, file.subarray(at)]), ...files.slice(1)], ONE)
    }
  ],
  [
    'transport padding after delimiters',
    files => {
      const request = stowRequest(files)
      const padded = request.body.toString('latin1').replace(/(--radmesh-fuzz-\d+-boundary)\r\n/g, '$1 \t \r\n')
      return { ...request, body: Buffer.from(padded, 'latin1') }
    }
  ],
  [
    'a nested multipart part',
    files => {
      const inner = stowRequest(files, 'inner-boundary')
      const outer = 'outer-boundary'
      const head = crlf(`--${outer}\nContent-Type: ${inner.contentType}\n\n`)
      const body = Buffer.concat([head, inner.body, crlf(`\n--${outer}--\n`)])
      return { path: '/dicom-web/studies', contentType: contentTypeOf(outer), body }
    }
  ],
  [
    "to another study's URL",
    (files, rng) => ({ ...stowRequest(files), path: `/dicom-web/studies/${rng.pick(ODD_STUDIES)}` })
  ]
]

function stowKind(): Kind {
  let samples: Sample[] = []
  let ledger: Ledger
  return {
    name: 'stow',
    async setup(target, theLedger, say) {
      ledger = theLedger
      samples = await stowKnownGood(target, ledger, say)
    },
    async run(target, rng) {
      const what: string[] = []
      const count = rng.chance(0.85) ? 1 : rng.range(2, 5)
      const files: Buffer[] = []
      for (let i = 0; i < count; i++) {
        const sample = rng.pick(samples)
        what.push(sample.name)
        files.push(caseFile(sample, rng, what))
      }
      let request = stowRequest(files)
      if (rng.chance(0.3)) {
        const [name, mutation] = rng.pick(MULTIPART_MUTATIONS)
        request = mutation(files, rng)
        what.push(`multipart: ${name}`)
      }
      const description = what.join('; ')
      const result = classify(await sendStow(target, request), description)
      if (result.outcome !== 'accepted' || result.accepted === undefined) return result
      const name = `STOW case instance ${result.accepted[0]?.sop ?? ''}`
      const opened = await openAccepted(target, ledger, result.accepted, name)
      if (opened.hung !== undefined) return { outcome: 'hung', what: description, why: `accepted, then ${opened.hung}` }
      if (opened.unclear !== undefined) {
        return { outcome: 'unclear', what: description, why: `accepted, then ${opened.unclear}` }
      }
      return result
    }
  }
}

export async function runStowFuzz(options: KindOptions): Promise<KindTally> {
  return await runKind(stowKind(), options)
}

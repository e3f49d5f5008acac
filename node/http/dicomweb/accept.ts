/**
 * Content negotiation for the DICOMweb routes (PS3.18 8.7): a request whose `Accept` (or `accept` query
 * parameter, which takes its place, PS3.18 8.3.3.1) names none of the media types a resource can be answered
 * with gets 406 RADMESH_NOT_ACCEPTABLE, before any work is done.
 *
 * What each resource answers, by the shape of its path under /dicom-web (so the routes themselves need not say):
 *
 *   studies, …/series, …/instances (QIDO-RS)       application/dicom+json (or application/json)
 *   a study, series or instance (WADO-RS)           multipart/related; type="application/dicom"
 *   …/metadata                                      application/dicom+json (or application/json)
 *   …/frames/N                                      multipart/related; type="application/octet-stream", or
 *                                                   an image type for compressed frames (image/jpeg, image/jls,
 *                                                   image/jp2, image/x-dicom-rle)
 *   …/bulk/…                                        multipart/related; type="application/octet-stream"
 *   …/rendered, …/thumbnail (rendered resources)    image/jpeg or image/png (renderedMediaType: the one the
 *                                                   Accept weighs more, image/jpeg on a tie, PS3.18 8.3.5.1)
 *
 * Ranges follow RFC 9110 12.5.1: `*` wildcards, `q` weights (q=0: not acceptable), and the most specific range
 * decides for each media type. A multipart range matches on its `type` parameter (none: any part type);
 * `transfer-syntax` is not negotiated here: frames and instances are answered in the syntax they are stored in.
 * A missing or unreadable Accept accepts anything.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import { RadmeshError } from '../../errors.ts'

/** A media type the server can answer with; `part` is the `type` parameter of a multipart answer. */
interface Offer {
  type: string
  subtype: string
  part?: string
}

interface MediaRange {
  type: string
  subtype: string
  part?: string
  q: number
}

const offer = (mediaType: string, part?: string): Offer => {
  const [type = '', subtype = ''] = mediaType.split('/')
  return { type, subtype, ...(part === undefined ? {} : { part }) }
}

const JSON_OFFERS = [offer('application/dicom+json'), offer('application/json')]
const INSTANCE_OFFERS = [offer('multipart/related', 'application/dicom')]
const BULK_OFFERS = [offer('multipart/related', 'application/octet-stream')]
/** The part types of frames stored compressed (node/http/dicomweb/frames.ts); image/x-jls is JPEG-LS's older name. */
const IMAGE_TYPES = ['image/jpeg', 'image/jls', 'image/x-jls', 'image/jp2', 'image/x-dicom-rle']
const FRAME_OFFERS = [...BULK_OFFERS, ...IMAGE_TYPES.map(part => offer('multipart/related', part))]

const JPEG = offer('image/jpeg')
const PNG = offer('image/png')
const IMAGE_OFFERS = [JPEG, PNG]

export type DicomwebResource = 'search' | 'instances' | 'metadata' | 'frames' | 'bulk' | 'rendered'

const OFFERS: Record<DicomwebResource, Offer[]> = {
  search: JSON_OFFERS,
  instances: INSTANCE_OFFERS,
  metadata: JSON_OFFERS,
  frames: FRAME_OFFERS,
  bulk: BULK_OFFERS,
  rendered: IMAGE_OFFERS
}

const ANSWERS: Record<DicomwebResource, string> = {
  search: 'application/dicom+json',
  instances: 'multipart/related; type="application/dicom"',
  metadata: 'application/dicom+json',
  frames: 'multipart/related; type="application/octet-stream" or an image type (image/jpeg, image/jls, …)',
  bulk: 'multipart/related; type="application/octet-stream"',
  rendered: 'image/jpeg or image/png'
}

/**
 * The DICOMweb resource a path names (PS3.18 10.4-10.6), from its shape alone:
 * studies[/S[/series[/R[/instances[/I]]]]], then …/metadata, …/thumbnail, or …/I/frames/N, …/I/bulk/…,
 * …/I/rendered, …/I/frames/N/rendered or …/I/frames/N/thumbnail.
 */
export function dicomwebResource(path: string): DicomwebResource | undefined {
  const segments = path.split('/')
  if (segments[0] !== '' || segments[1] !== 'dicom-web' || segments[2] !== 'studies') return undefined
  const rest = segments.slice(3)
  if (rest.at(-1) === '') rest.pop() // a trailing slash
  const levels = ['series', 'instances']
  let at = 0
  // rest: [S, 'series', R, 'instances', I, …]: a UID, then the next level's name, and so on.
  for (;;) {
    if (at === rest.length) return 'search' // ends in a level's name: a query
    at++ // a UID
    if (at === rest.length) return 'instances'
    const next = rest[at]
    if (next === 'metadata') return at + 1 === rest.length ? 'metadata' : undefined
    if (next === 'thumbnail') return at + 1 === rest.length ? 'rendered' : undefined
    if (at === 5 && next === 'rendered') return at + 1 === rest.length ? 'rendered' : undefined
    if (at === 5 && next === 'frames') {
      if (at + 2 === rest.length) return 'frames'
      const last = rest[at + 2]
      return at + 3 === rest.length && (last === 'rendered' || last === 'thumbnail') ? 'rendered' : undefined
    }
    if (at === 5 && next === 'bulk') return rest.length > at + 1 ? 'bulk' : undefined
    if (next !== levels[(at - 1) / 2]) return undefined
    at++
  }
}

const isTokenCharacter = (c: string): boolean => /^[!#$%&'*+.^_`|~0-9A-Za-z-]$/.test(c)

/** Splits at `separator` outside quoted strings. */
function splitOutsideQuotes(text: string, separator: string): string[] {
  const pieces: string[] = []
  let current = ''
  let quoted = false
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string
    if (quoted && c === '\\') {
      current += c + (text[i + 1] ?? '')
      i++
    } else if (c === '"') {
      quoted = !quoted
      current += c
    } else if (!quoted && c === separator) {
      pieces.push(current)
      current = ''
    } else {
      current += c
    }
  }
  pieces.push(current)
  return pieces
}

const unquote = (value: string): string =>
  value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1).replace(/\\(.)/g, '$1') : value

/** The media ranges of an Accept header; elements that are not `type/subtype` are left out. */
export function parseAccept(header: string): MediaRange[] {
  const ranges: MediaRange[] = []
  for (const element of splitOutsideQuotes(header, ',')) {
    const [mediaType = '', ...parameters] = splitOutsideQuotes(element, ';').map(p => p.trim())
    const [type = '', subtype = '', extra] = mediaType.toLowerCase().split('/')
    if (extra !== undefined || type === '' || subtype === '' || ![...type, ...subtype].every(isTokenCharacter)) continue
    if (type === '*' && subtype !== '*') continue
    let q = 1
    let part: string | undefined
    let valid = true
    for (const parameter of parameters) {
      const equals = parameter.indexOf('=')
      if (equals <= 0) continue
      const name = parameter.slice(0, equals).trim().toLowerCase()
      const value = unquote(parameter.slice(equals + 1).trim())
      if (name === 'q') {
        q = /^\d{1,5}(\.\d{0,5})?$/.test(value) ? Number(value) : Number.NaN
        valid = q >= 0 && q <= 1
      } else if (name === 'type') {
        part = value.toLowerCase()
      }
    }
    if (valid) ranges.push({ type, subtype, ...(part === undefined ? {} : { part }), q })
  }
  return ranges
}

/** How specifically `range` names `offer` (higher wins), or -1 when it does not name it. */
function specificity(range: MediaRange, offer: Offer): number {
  if (range.type !== '*' && range.type !== offer.type) return -1
  if (range.subtype !== '*' && range.subtype !== offer.subtype) return -1
  let score = (range.type === '*' ? 0 : 1) + (range.subtype === '*' ? 0 : 1)
  if (range.part !== undefined) {
    if (offer.part === undefined) return -1
    const [type, subtype] = range.part.split('/')
    const [offerType, offerSubtype] = offer.part.split('/')
    if ((type !== '*' && type !== offerType) || (subtype !== '*' && subtype !== offerSubtype)) return -1
    score += subtype === '*' ? 1 : 2
  }
  return score
}

/** The weight the ranges give `offer`: that of the most specific range naming it (0 when none does). */
function weightOf(ranges: readonly MediaRange[], offer: Offer): number {
  let best = -1
  let q = 0
  for (const range of ranges) {
    const score = specificity(range, offer)
    if (score > best || (score === best && range.q > q)) {
      best = score
      q = range.q
    }
  }
  return best >= 0 ? q : 0
}

/** Whether any of `offers` is acceptable: the most specific range naming it has q > 0. */
export function acceptable(ranges: readonly MediaRange[], offers: readonly Offer[]): boolean {
  if (ranges.length === 0) return true
  return offers.some(offer => weightOf(ranges, offer) > 0)
}

/** The Accept a request negotiates with: its `accept` query parameter(s) when given, else its header. */
function acceptOf(request: FastifyRequest): string | undefined {
  const query = request.query as Record<string, string | string[] | undefined> | undefined
  const parameter = Object.entries(query ?? {}).find(([name]) => name.toLowerCase() === 'accept')?.[1]
  if (parameter !== undefined) return Array.isArray(parameter) ? parameter.join(',') : parameter
  return request.headers.accept
}

/**
 * The media type a rendered resource is answered as: the one its Accept weighs more, image/jpeg on a tie (the
 * default of PS3.18 8.3.5.1, and what a browser's image Accept gets). The hook below has refused an Accept
 * that takes neither.
 */
export function renderedMediaType(request: FastifyRequest): 'image/jpeg' | 'image/png' {
  const accept = acceptOf(request)
  const ranges = accept === undefined ? [] : parseAccept(accept)
  if (ranges.length === 0) return 'image/jpeg'
  return weightOf(ranges, PNG) > weightOf(ranges, JPEG) ? 'image/png' : 'image/jpeg'
}

/**
 * The `onRequest` hook: 406 for a GET (or HEAD) of a DICOMweb resource whose Accept names nothing it can be
 * answered with. Routes that are not found are left to the 404 handler.
 */
export async function negotiateDicomweb(request: FastifyRequest, _reply: FastifyReply): Promise<void> {
  if ((request.method !== 'GET' && request.method !== 'HEAD') || request.is404) return
  const mark = request.url.indexOf('?')
  const resource = dicomwebResource(mark < 0 ? request.url : request.url.slice(0, mark))
  if (resource === undefined) return
  const accept = acceptOf(request)
  if (accept === undefined || acceptable(parseAccept(accept), OFFERS[resource])) return
  const message = `this resource is answered as ${ANSWERS[resource]}, which the Accept does not take`
  throw new RadmeshError('RADMESH_NOT_ACCEPTABLE', message)
}

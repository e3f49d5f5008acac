/**
 * The streaming multipart/related parser: pushed in pieces split anywhere, byte by byte or at random, it reads
 * the same parts as the whole body, hands out views into the pieces rather than copies, keeps what came before
 * a fault, and throws MalformedMessageError on a bad body however it is cut.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import {
  DEFAULT_MAX_HEADER_BYTES,
  encodeMultipartParts,
  MAX_TRANSPORT_PADDING,
  type MultipartEvent,
  MultipartParser,
  type MultipartPart,
  newBoundary,
  parseMultipartRelated
} from '../../protocol/dicomweb/multipart.ts'
import { MalformedMessageError } from '../../protocol/errors.ts'
import { throwsMalformed } from '../helpers/assertions.ts'
import { concat, randomBytes, utf8 } from './multipart-helpers.ts'

/** What a parser fed `pieces` one by one reports, as parts (bodies joined), with every event kept. */
function parsePieces(
  pieces: Uint8Array[],
  boundary: string,
  limits = {}
): { parts: MultipartPart[]; events: MultipartEvent[] } {
  const parser = new MultipartParser(boundary, limits)
  const events: MultipartEvent[] = []
  for (const piece of pieces) parser.push(piece, events)
  parser.end(events)
  const parts: MultipartPart[] = []
  let open: { headers: Record<string, string>; bodies: Uint8Array[] } | undefined
  for (const event of events) {
    if (event.type === 'part') {
      assert.is(open, undefined, 'a part begins inside another')
      open = { headers: event.headers, bodies: [] }
    } else if (event.type === 'body') {
      assert.ok(open !== undefined && event.bytes.length > 0, 'body bytes outside a part, or empty')
      open.bodies.push(event.bytes)
    } else if (event.type === 'part-end') {
      assert.ok(open !== undefined, 'a part ends that did not begin')
      assert.is(event.part, parts.length + 1)
      parts.push({ headers: open.headers, body: concat(open.bodies) })
      open = undefined
    }
  }
  assert.is(events.at(-1)?.type, 'end')
  assert.is(events.filter(e => e.type === 'end').length, 1)
  return { parts, events }
}

/** An application/dicom part of `text`. */
const dicom = (text: string): { contentType: string; body: Uint8Array } => ({
  contentType: 'application/dicom',
  body: utf8(text)
})

/** Bodies whose parts hold the bytes that come nearest a delimiter, for `boundary`. */
function nastyParts(boundary: string): Array<{ contentType: string; body: Uint8Array }> {
  return [
    dicom(`\r\n--${boundary.slice(0, -1)}\r\n--${boundary}X\r\n--${boundary}-\r`),
    dicom(''),
    dicom(`--${boundary}\r\n-`),
    { contentType: 'application/dicom', body: concat([randomBytes(40, 7), utf8('\r\n--\r\n\r\n'), randomBytes(9, 8)]) },
    dicom('\r')
  ]
}

// Short boundaries are searched by the JavaScript loop, longer ones natively (with the loop after a
// look-alike); 73 characters is what Orthanc sends.
const BOUNDARIES = ['b', 'radmesh-0123456789abcdef', `${'0123abcd-'.repeat(8)}x`]

/** What another client writes: any boundary (the encoder keeps to 70 characters), no Content-Location. */
function encodeAny(parts: Array<{ contentType: string; body: Uint8Array }>, boundary: string): Uint8Array {
  return concat([
    ...parts.flatMap((part, i) => [
      utf8(`${i === 0 ? '' : '\r\n'}--${boundary}\r\nContent-Type: ${part.contentType}\r\n\r\n`),
      part.body
    ]),
    utf8(`${parts.length === 0 ? '' : '\r\n'}--${boundary}--\r\n`)
  ])
}

test('streaming: every split point of a body, and byte by byte, reads the same parts as the whole', () => {
  for (const boundary of BOUNDARIES) {
    const parts = nastyParts(boundary)
    const body = concat([utf8('preamble\r\n'), encodeAny(parts, boundary), utf8('epilogue --')])
    const whole = parseMultipartRelated(body, `multipart/related; boundary="${boundary}"`)
    assert.equal(
      whole.map(p => p.body),
      parts.map(p => p.body),
      `whole, boundary ${boundary}`
    )
    for (let split = 0; split <= body.length; split++) {
      const { parts: read } = parsePieces([body.subarray(0, split), body.subarray(split)], boundary)
      assert.equal(read, whole, `boundary ${boundary}, split at ${split}`)
    }
    const bytes = Array.from(body, b => Uint8Array.of(b))
    assert.equal(parsePieces(bytes, boundary).parts, whole, `boundary ${boundary}, byte by byte`)
  }
})

test('streaming: random splits of a body with random parts, with a delimiter opening it and none', () => {
  let seed = 1
  for (const boundary of BOUNDARIES) {
    for (let round = 0; round < 40; round++) {
      const parts = Array.from({ length: 1 + (round % 4) }, (_, i) => ({
        contentType: 'application/dicom',
        body: randomBytes((round * 37 + i * 1000) % 3000, seed++)
      }))
      const encoded = encodeAny(parts, boundary)
      const body = round % 2 === 0 ? encoded : concat([utf8('a preamble'), utf8('\r\n'), encoded])
      const pieces: Uint8Array[] = []
      const cuts = randomBytes(body.length, seed++)
      for (let at = 0; at < body.length; ) {
        const length = Math.min(body.length - at, 1 + ((cuts[at] as number) % 97))
        pieces.push(body.subarray(at, at + length))
        at += length
      }
      const read = parsePieces(pieces, boundary).parts
      assert.equal(
        read.map(p => p.body),
        parts.map(p => p.body),
        `boundary ${boundary}, round ${round}`
      )
    }
  }
})

test('streaming: bodies are views into the pieces pushed, copied only for bytes carried between pieces', () => {
  const boundary = newBoundary()
  const first = randomBytes(100_000, 5)
  const body = concat(encodeMultipartParts([{ contentType: 'application/dicom', body: first }], boundary))
  const { events } = parsePieces([body], boundary)
  const bodies = events.filter(e => e.type === 'body')
  assert.is(bodies.length, 1)
  assert.is(bodies[0]?.bytes.buffer, body.buffer)
  // Cut inside the closing delimiter: the bytes before it are still views, the carried ones a copy.
  const cut = body.length - boundary.length
  const split = parsePieces([body.subarray(0, cut), body.subarray(cut)], boundary)
  const pieces = split.events.filter(e => e.type === 'body').map(e => (e as { bytes: Uint8Array }).bytes)
  assert.is(pieces[0]?.buffer, body.buffer)
  assert.equal(concat(pieces), first)
})

test('streaming: what came before a fault is kept, and the fault is thrown again after', () => {
  const boundary = newBoundary()
  const good = [...encodeMultipartParts([dicom('one'), dicom('two')], boundary)]
  const tooLong = utf8(`\r\n--${boundary}\r\nX-Long: ${'x'.repeat(DEFAULT_MAX_HEADER_BYTES)}\r\n\r\nthree`)
  const body = concat([...good.slice(0, -1), tooLong])
  const parser = new MultipartParser(boundary)
  const events: MultipartEvent[] = []
  assert.throws(
    () => parser.push(body, events),
    (error: unknown) => error instanceof MalformedMessageError && /no end of headers/.test(error.message)
  )
  assert.equal(
    events.map(e => e.type),
    ['part', 'body', 'part-end', 'part', 'body', 'part-end']
  )
  throwsMalformed(() => parser.push(utf8('more')), 'push after a fault')
  throwsMalformed(() => parser.end(), 'end after a fault')
})

test('streaming: malformed bodies, whole or in pieces of every size, throw MalformedMessageError', () => {
  const b = 'radmesh-boundary'
  const cases: Array<[string, Uint8Array, { maxParts?: number; maxHeaderBytes?: number }]> = [
    ['no delimiter', utf8(`just bytes, and --${b} not after CR LF, \r\n--${b}x a look-alike`), {}],
    ['no closing delimiter', utf8(`--${b}\r\n\r\nx\r\n--${b}\r\n\r\ny`), {}],
    ['cut inside the closing delimiter', utf8(`--${b}\r\n\r\nx\r\n--${b}-`), {}],
    ['cut inside the headers', utf8(`--${b}\r\nContent-Type: appl`), {}],
    [
      'a header block over the limit',
      utf8(`--${b}\r\nContent-Type: application/dicom\r\n\r\nx\r\n--${b}--`),
      {
        maxHeaderBytes: 20
      }
    ],
    ['too many parts', concat(encodeMultipartParts([dicom('1'), dicom('2'), dicom('3')], b)), { maxParts: 2 }],
    ['padding over the limit', utf8(`--${b}${' '.repeat(MAX_TRANSPORT_PADDING + 1)}\r\n\r\nx\r\n--${b}--`), {}],
    ['a header line without a name', utf8(`--${b}\r\nnot a header\r\n\r\nx\r\n--${b}--`), {}],
    ['empty', new Uint8Array(0), {}]
  ]
  for (const [what, body, limits] of cases) {
    for (const size of [body.length || 1, 1, 2, 3, 7, 64]) {
      throwsMalformed(() => {
        const parser = new MultipartParser(b, limits)
        for (let at = 0; at < body.length; at += size) parser.push(body.subarray(at, at + size))
        parser.end()
      }, `${what}, pieces of ${size}`)
    }
  }
  // At the limits exactly, they are fine.
  const padded = utf8(`--${b}${' \t'.repeat(MAX_TRANSPORT_PADDING / 2)}\r\nA: b\r\n\r\nx\r\n--${b}--`)
  assert.equal(parsePieces([padded], b).parts, [{ headers: { a: 'b' }, body: utf8('x') }])
  const header = utf8(`--${b}\r\nA: ${'b'.repeat(13)}\r\n\r\nx\r\n--${b}--`)
  assert.is(parsePieces([header], b, { maxHeaderBytes: 16 }).parts.length, 1)
})
test.run()

/**
 * multipart/related for STOW-RS and WADO-RS: what the encoder writes the parser reads back byte for byte,
 * whole or pushed in pieces split anywhere; bodies may hold any bytes (boundary look-alikes included); bad
 * bodies throw MalformedMessageError; and finding the delimiters takes time linear in the body, whatever its bytes.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import {
  DEFAULT_MAX_HEADER_BYTES,
  encodeMultipartParts,
  MAX_TRANSPORT_PADDING,
  type MultipartEvent,
  multipartBoundary,
  MultipartParser,
  type MultipartPart,
  multipartRelatedHeader,
  newBoundary,
  parseContentType,
  parseMultipartRelated
} from '../../protocol/dicomweb/multipart.ts'
import { MalformedMessageError } from '../../protocol/errors.ts'
import { throwsMalformed } from '../helpers/assertions.ts'

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text)
const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes)

function concat (chunks: Iterable<Uint8Array>): Uint8Array {
  const list = [...chunks]
  const out = new Uint8Array(list.reduce((n, c) => n + c.length, 0))
  let at = 0
  for (const chunk of list) {
    out.set(chunk, at)
    at += chunk.length
  }
  return out
}


function randomBytes (n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n)
  let x = seed
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0
    out[i] = x >>> 24
  }
  return out
}

test('parseContentType: type, quoted and unquoted parameters, case-insensitive names', () => {
  const parsed = parseContentType('Multipart/Related; Type="application/dicom";  BOUNDARY=abc-123 ; start="<a\\"b>";')
  assert.equal(parsed, { type: 'multipart/related', params: { type: 'application/dicom', boundary: 'abc-123', start: '<a"b>' } })
  assert.equal(parseContentType('application/dicom'), { type: 'application/dicom', params: {} })
  assert.equal(parseContentType('multipart/related;boundary="with space: and/slash"').params['boundary'], 'with space: and/slash')
})

test('parseContentType: no type, or broken parameters, throw MalformedMessageError', () => {
  for (const bad of ['', 'multipart', '/related', 'multipart/related; boundary', 'multipart/related; boundary="open', 'multipart/related boundary=x', 'multipart/related; =x']) {
    throwsMalformed(() => parseContentType(bad), JSON.stringify(bad))
  }
})

test('round trip: encoded parts parse back to the same bodies, headers and count', () => {
  const boundary = newBoundary()
  const parts = [
    { contentType: 'application/dicom', body: randomBytes(70000, 1), location: 'http://x/studies/1/series/2/instances/3' },
    { contentType: 'application/dicom', body: new Uint8Array(0) },
    { contentType: 'application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1', body: randomBytes(3, 2) }
  ]
  const header = multipartRelatedHeader(boundary, 'application/dicom')
  assert.equal(parseContentType(header), { type: 'multipart/related', params: { type: 'application/dicom', boundary } })
  const body = concat(encodeMultipartParts(parts, boundary))
  const parsed = parseMultipartRelated(body, header)
  assert.is(parsed.length, 3)
  parsed.forEach((part, i) => {
    const original = parts[i]
    assert.ok(original)
    assert.equal(part.body, original.body)
    assert.is(part.headers['content-type'], original.contentType)
    assert.is(part.headers['content-location'], original.location)
  })
})

test('round trip of zero parts', () => {
  const boundary = newBoundary()
  assert.equal(parseMultipartRelated(concat(encodeMultipartParts([], boundary)), multipartRelatedHeader(boundary, 'application/dicom')), [])
})

test('the encoder yields bodies as the same arrays, not copies', () => {
  const body = randomBytes(1000, 3)
  const chunks = [...encodeMultipartParts([{ contentType: 'application/dicom', body }], 'b')]
  assert.ok(chunks.includes(body))
  assert.is(text(chunks[chunks.length - 1] as Uint8Array), '\r\n--b--\r\n')
})

test('parsed bodies are views into the request body (no copy)', () => {
  const body = concat(encodeMultipartParts([{ contentType: 'application/dicom', body: randomBytes(100, 4) }], 'b'))
  const [part] = parseMultipartRelated(body, 'multipart/related; boundary=b')
  assert.ok(part)
  assert.is(part.body.buffer, body.buffer)
})

test('binary bodies with CR LF "--", the boundary prefix and near-boundaries survive', () => {
  const boundary = 'radmesh-0123456789abcdef'
  const nasty = [
    '\r\n--',
    '\r\n--radmesh-0123456789abcde', // the boundary minus its last character
    '\r\n--radmesh-0123456789abcdefX', // the boundary as the prefix of a longer word
    '\r\n--radmesh-0123456789abcdef-', // followed by one hyphen, not two
    '--radmesh-0123456789abcdef', // at the start of the body but not after CR LF
    '\r\r\n\n--radmesh',
    '\r\n-',
    '\r'
  ]
  const parts = nasty.map((piece, i) => ({
    contentType: 'application/dicom',
    body: concat([utf8(piece), randomBytes(50, i), utf8(piece), new Uint8Array([0, 0x0d, 0x0a, 0x2d, 0x2d, 0xff]), utf8(piece)])
  }))
  parts.push({ contentType: 'application/dicom', body: utf8('\r\n') }, { contentType: 'application/dicom', body: utf8('--') })
  const body = concat(encodeMultipartParts(parts, boundary))
  const parsed = parseMultipartRelated(body, multipartRelatedHeader(boundary, 'application/dicom'))
  assert.is(parsed.length, parts.length)
  parsed.forEach((part, i) => { assert.equal(part.body, parts[i]?.body, `part ${i}`) })
})

test('a body written by another encoder: preamble, quoted boundary, padding, no-header part, epilogue', () => {
  const body = utf8([
    'This is a preamble, to be ignored.',
    '--simple boundary  ',
    'Content-Type: application/dicom',
    'Content-Location:',
    ' http://folded.example/x',
    '',
    'first\r\nbody',
    '--simple boundary',
    '',
    'second (no headers)',
    '--simple boundary',
    'content-type: application/dicom+json',
    'X-Extra: 1',
    'x-extra: 2',
    '',
    '',
    '--simple boundary--',
    'This is the epilogue, also ignored.',
    '--simple boundary',
    ''
  ].join('\r\n'))
  const parsed = parseMultipartRelated(body, 'multipart/related; type="application/dicom"; boundary="simple boundary"')
  assert.equal(parsed.map(p => p.headers), [
    { 'content-type': 'application/dicom', 'content-location': 'http://folded.example/x' },
    {},
    { 'content-type': 'application/dicom+json', 'x-extra': '1, 2' }
  ])
  assert.equal(parsed.map(p => text(p.body)), ['first\r\nbody', 'second (no headers)', ''])
})

test('the first delimiter may open the body, without preamble', () => {
  const parsed = parseMultipartRelated(utf8('--b\r\nContent-Type: application/dicom\r\n\r\nx\r\n--b--'), 'multipart/related; boundary=b')
  assert.equal(parsed.map(p => text(p.body)), ['x'])
})

test('malformed bodies and content types throw MalformedMessageError', () => {
  const related = 'multipart/related; type="application/dicom"; boundary=b'
  const long = 'b'.repeat(201)
  const cases: Array<[string, Uint8Array, string]> = [
    ['no boundary parameter', utf8('--b\r\n\r\nx\r\n--b--'), 'multipart/related; type="application/dicom"'],
    ['empty boundary', utf8('--\r\n\r\nx\r\n----'), 'multipart/related; boundary=""'],
    ['boundary longer than 200', utf8(`--${long}\r\n\r\nx\r\n--${long}--`), `multipart/related; boundary=${long}`],
    ['boundary ending in a space', utf8('--b \r\n\r\nx\r\n--b --'), 'multipart/related; boundary="b "'],
    ['not multipart/related', utf8('--b\r\n\r\nx\r\n--b--'), 'application/dicom; boundary=b'],
    ['no delimiter at all', utf8('just some bytes'), related],
    ['no closing delimiter', utf8('--b\r\nContent-Type: application/dicom\r\n\r\nx\r\n--b\r\n\r\ny'), related],
    ['truncated in the first part', utf8('--b\r\nContent-Type: application/dicom\r\n\r\nxxxx'), related],
    ['no end of headers', utf8('--b\r\nContent-Type: application/dicom\r\n--b--'), related],
    ['a header line without a name', utf8('--b\r\nnot a header\r\n\r\nx\r\n--b--'), related],
    ['only a boundary look-alike', utf8('--bx\r\n\r\nx\r\n--bx--'), related],
    ['empty body', new Uint8Array(0), related]
  ]
  for (const [what, body, contentType] of cases) throwsMalformed(() => parseMultipartRelated(body, contentType), what)
})

test('more than maxParts parts throws MalformedMessageError; exactly maxParts is fine', () => {
  const parts = Array.from({ length: 5 }, () => ({ contentType: 'application/dicom', body: utf8('x') }))
  const body = concat(encodeMultipartParts(parts, 'b'))
  assert.is(parseMultipartRelated(body, 'multipart/related; boundary=b', { maxParts: 5 }).length, 5)
  throwsMalformed(() => parseMultipartRelated(body, 'multipart/related; boundary=b', { maxParts: 4 }), 'maxParts 4')
})

test('the encoder refuses bad boundaries and header injection', () => {
  assert.throws(() => [...encodeMultipartParts([], '')], TypeError)
  assert.throws(() => [...encodeMultipartParts([], 'a'.repeat(71))], TypeError)
  assert.throws(() => [...encodeMultipartParts([{ contentType: 'a/b\r\nX: y', body: new Uint8Array(1) }], 'b')], TypeError)
  assert.throws(() => [...encodeMultipartParts([{ contentType: 'a/b', body: new Uint8Array(1), location: 'x\ny' }], 'b')], TypeError)
  assert.throws(() => multipartRelatedHeader('b', 'a/b"; boundary=evil'), TypeError)
})

test('newBoundary is random, a token, and within 70 characters', () => {
  const a = newBoundary()
  const b = newBoundary()
  assert.is.not(a, b)
  assert.ok(/^[0-9A-Za-z-]{1,70}$/.test(a))
  assert.is(multipartRelatedHeader(a, 'application/dicom'), `multipart/related; type="application/dicom"; boundary=${a}`)
})

test('a large body parses in linear time', () => {
  const big = randomBytes(32 * 1024 * 1024, 9)
  const start = performance.now()
  const parsed = parseMultipartRelated(concat(encodeMultipartParts([{ contentType: 'application/dicom', body: big }, { contentType: 'application/dicom', body: big }], 'b')), 'multipart/related; boundary=b')
  assert.is(parsed.length, 2)
  assert.is(parsed[1]?.body.length, big.length)
  assert.ok(performance.now() - start < 5000, 'parses 64 MB in under 5 s')
})

/** What a parser fed `pieces` one by one reports, as parts (bodies joined), with every event kept. */
function parsePieces (
  pieces: Uint8Array[], boundary: string, limits = {}
): { parts: MultipartPart[], events: MultipartEvent[] } {
  const parser = new MultipartParser(boundary, limits)
  const events: MultipartEvent[] = []
  for (const piece of pieces) parser.push(piece, events)
  parser.end(events)
  const parts: MultipartPart[] = []
  let open: { headers: Record<string, string>, bodies: Uint8Array[] } | undefined
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
const dicom = (text: string): { contentType: string, body: Uint8Array } =>
  ({ contentType: 'application/dicom', body: utf8(text) })

/** Bodies whose parts hold the bytes that come nearest a delimiter, for `boundary`. */
function nastyParts (boundary: string): Array<{ contentType: string, body: Uint8Array }> {
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
function encodeAny (parts: Array<{ contentType: string, body: Uint8Array }>, boundary: string): Uint8Array {
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
    assert.equal(whole.map(p => p.body), parts.map(p => p.body), `whole, boundary ${boundary}`)
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
      for (let at = 0; at < body.length;) {
        const length = Math.min(body.length - at, 1 + (cuts[at] as number) % 97)
        pieces.push(body.subarray(at, at + length))
        at += length
      }
      const read = parsePieces(pieces, boundary).parts
      assert.equal(read.map(p => p.body), parts.map(p => p.body), `boundary ${boundary}, round ${round}`)
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
  assert.throws(() => parser.push(body, events), (error: unknown) =>
    error instanceof MalformedMessageError && /no end of headers/.test(error.message))
  assert.equal(events.map(e => e.type), ['part', 'body', 'part-end', 'part', 'body', 'part-end'])
  throwsMalformed(() => parser.push(utf8('more')), 'push after a fault')
  throwsMalformed(() => parser.end(), 'end after a fault')
})

test('streaming: malformed bodies, whole or in pieces of every size, throw MalformedMessageError', () => {
  const b = 'radmesh-boundary'
  const cases: Array<[string, Uint8Array, { maxParts?: number, maxHeaderBytes?: number }]> = [
    ['no delimiter', utf8(`just bytes, and --${b} not after CR LF, \r\n--${b}x a look-alike`), {}],
    ['no closing delimiter', utf8(`--${b}\r\n\r\nx\r\n--${b}\r\n\r\ny`), {}],
    ['cut inside the closing delimiter', utf8(`--${b}\r\n\r\nx\r\n--${b}-`), {}],
    ['cut inside the headers', utf8(`--${b}\r\nContent-Type: appl`), {}],
    ['a header block over the limit', utf8(`--${b}\r\nContent-Type: application/dicom\r\n\r\nx\r\n--${b}--`), {
      maxHeaderBytes: 20
    }],
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

test('boundaries: up to 200 characters of the RFC 2046 set are read (Orthanc sends 73); written: 70 at most', () => {
  const orthanc = '8f0e3f1c-6bd5-4a39-9b7f-3f0a3b8ad4f2-0c6e9d34-1c1e-4bb0-9a6c-1b1a0f6f6e0e'
  assert.is(orthanc.length, 73)
  for (const boundary of [orthanc, 'x'.repeat(200), "'()+_,-./:=? a"]) {
    const contentType = `multipart/related; type="application/dicom"; boundary="${boundary}"`
    assert.is(multipartBoundary(contentType), boundary)
    const body = utf8(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\nDICM\r\n--${boundary}--\r\n`)
    assert.equal(parseMultipartRelated(body, contentType).map(p => text(p.body)), ['DICM'])
  }
  const bad = ['multipart/related', 'multipart/related; boundary=""', `multipart/related; boundary=${'x'.repeat(201)}`,
    'multipart/related; boundary="a "', 'multipart/related; boundary="a\\\\b"', 'application/dicom; boundary=x', 'text']
  for (const contentType of bad) {
    throwsMalformed(() => multipartBoundary(contentType), contentType)
  }
  assert.throws(() => multipartRelatedHeader(orthanc, 'application/dicom'), TypeError)
})

/** Milliseconds of CPU this process spent since `start` (steadier than the clock while other work shares the cores). */
function cpuMs (start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start)
  return (used.user + used.system) / 1000
}

/** CPU time to push `total` bytes made of `piece` repeated, inside one part, to a parser. */
function timePart (boundary: string, piece: Uint8Array, total: number): number {
  const parser = new MultipartParser(boundary)
  const start = process.cpuUsage()
  parser.push(utf8(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`))
  let bytes = 0
  for (let sent = 0; sent < total; sent += piece.length) {
    for (const event of parser.push(piece)) bytes += event.type === 'body' ? event.bytes.length : 0
  }
  const events = parser.end(parser.push(utf8(`\r\n--${boundary}--`)))
  const elapsed = cpuMs(start)
  assert.is(bytes + events.reduce((n, e) => n + (e.type === 'body' ? e.bytes.length : 0), 0), total)
  return elapsed
}

const MiB = 1024 * 1024

test('linear time: 300 MB of CR (0x0D) in 1 MiB pieces parses in about a second, whatever the boundary', () => {
  const cr = new Uint8Array(MiB).fill(0x0d)
  for (const boundary of [newBoundary(), 'b']) {
    const ms = timePart(boundary, cr, 300 * MiB)
    assert.ok(ms < 1000, `300 MB of CR took ${ms.toFixed(0)} ms with boundary ${boundary}`)
  }
})

test('linear time: CR LF "-" repeats and boundary look-alikes, 300 MB in 1 MiB pieces', () => {
  const boundary = newBoundary()
  const fill = (pattern: string): Uint8Array => {
    const one = utf8(pattern)
    const out = new Uint8Array(MiB - (MiB % one.length))
    for (let at = 0; at < out.length; at += one.length) out.set(one, at)
    return out
  }
  for (const pattern of ['\r\n-', '\r\n--', `\r\n--${boundary}X`, `\r\n--${boundary.slice(0, -1)}`]) {
    const piece = fill(pattern)
    const ms = timePart(boundary, piece, 300 * MiB - ((300 * MiB) % piece.length))
    assert.ok(ms < 2000, `300 MB of ${JSON.stringify(pattern.slice(0, 6))}… took ${ms.toFixed(0)} ms`)
  }
})

test('linear time: a 64 MB part of CR, whole, parses in well under a second', () => {
  const body = concat([utf8('--b\r\n\r\n'), new Uint8Array(64 * MiB).fill(0x0d), utf8('\r\n--b--')])
  const start = process.cpuUsage()
  const [part] = parseMultipartRelated(body, 'multipart/related; boundary=b')
  const ms = cpuMs(start)
  assert.is(part?.body.length, 64 * MiB)
  assert.ok(ms < 500, `64 MB of CR took ${ms.toFixed(0)} ms`)
})

test.run()

/**
 * multipart/related for STOW-RS and WADO-RS: what the encoder writes the parser reads back byte for byte,
 * whole or pushed in pieces split anywhere; bodies may hold any bytes (boundary look-alikes included); bad
 * bodies throw MalformedMessageError; and finding the delimiters takes time linear in the body, whatever its
 * bytes. (Streaming: multipart-streaming.test.ts; linear time: multipart-linear.test.ts.)
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import {
  encodeMultipartParts,
  multipartBoundary,
  multipartRelatedHeader,
  newBoundary,
  parseContentType,
  parseMultipartRelated
} from '../../protocol/dicomweb/multipart.ts'
import { throwsMalformed } from '../helpers/assertions.ts'
import { concat, randomBytes, text, utf8 } from './multipart-helpers.ts'

test('parseContentType: type, quoted and unquoted parameters, case-insensitive names', () => {
  const parsed = parseContentType('Multipart/Related; Type="application/dicom";  BOUNDARY=abc-123 ; start="<a\\"b>";')
  assert.equal(parsed, {
    type: 'multipart/related',
    params: { type: 'application/dicom', boundary: 'abc-123', start: '<a"b>' }
  })
  assert.equal(parseContentType('application/dicom'), { type: 'application/dicom', params: {} })
  const quoted = parseContentType('multipart/related;boundary="with space: and/slash"')
  assert.equal(quoted.params['boundary'], 'with space: and/slash')
})

test('parseContentType: no type, or broken parameters, throw MalformedMessageError', () => {
  const bads = [
    '',
    'multipart',
    '/related',
    'multipart/related; boundary',
    'multipart/related; boundary="open',
    'multipart/related boundary=x',
    'multipart/related; =x'
  ]
  for (const bad of bads) {
    throwsMalformed(() => parseContentType(bad), JSON.stringify(bad))
  }
})

test('round trip: encoded parts parse back to the same bodies, headers and count', () => {
  const boundary = newBoundary()
  const parts = [
    {
      contentType: 'application/dicom',
      body: randomBytes(70000, 1),
      location: 'http://x/studies/1/series/2/instances/3'
    },
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
  const header = multipartRelatedHeader(boundary, 'application/dicom')
  assert.equal(parseMultipartRelated(concat(encodeMultipartParts([], boundary)), header), [])
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
    body: concat([
      utf8(piece),
      randomBytes(50, i),
      utf8(piece),
      new Uint8Array([0, 0x0d, 0x0a, 0x2d, 0x2d, 0xff]),
      utf8(piece)
    ])
  }))
  parts.push(
    { contentType: 'application/dicom', body: utf8('\r\n') },
    { contentType: 'application/dicom', body: utf8('--') }
  )
  const body = concat(encodeMultipartParts(parts, boundary))
  const parsed = parseMultipartRelated(body, multipartRelatedHeader(boundary, 'application/dicom'))
  assert.is(parsed.length, parts.length)
  parsed.forEach((part, i) => {
    assert.equal(part.body, parts[i]?.body, `part ${i}`)
  })
})

test('a body written by another encoder: preamble, quoted boundary, padding, no-header part, epilogue', () => {
  const body = utf8(
    [
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
    ].join('\r\n')
  )
  const parsed = parseMultipartRelated(body, 'multipart/related; type="application/dicom"; boundary="simple boundary"')
  assert.equal(
    parsed.map(p => p.headers),
    [
      { 'content-type': 'application/dicom', 'content-location': 'http://folded.example/x' },
      {},
      { 'content-type': 'application/dicom+json', 'x-extra': '1, 2' }
    ]
  )
  assert.equal(
    parsed.map(p => text(p.body)),
    ['first\r\nbody', 'second (no headers)', '']
  )
})

test('the first delimiter may open the body, without preamble', () => {
  const body = utf8('--b\r\nContent-Type: application/dicom\r\n\r\nx\r\n--b--')
  const parsed = parseMultipartRelated(body, 'multipart/related; boundary=b')
  assert.equal(
    parsed.map(p => text(p.body)),
    ['x']
  )
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
  const injected = { contentType: 'a/b\r\nX: y', body: new Uint8Array(1) }
  assert.throws(() => [...encodeMultipartParts([injected], 'b')], TypeError)
  const badLocation = { contentType: 'a/b', body: new Uint8Array(1), location: 'x\ny' }
  assert.throws(() => [...encodeMultipartParts([badLocation], 'b')], TypeError)
  assert.throws(() => multipartRelatedHeader('b', 'a/b"; boundary=evil'), TypeError)
})

test('newBoundary is random, a token, and within 70 characters', () => {
  const a = newBoundary()
  const b = newBoundary()
  assert.is.not(a, b)
  assert.ok(/^[0-9A-Za-z-]{1,70}$/.test(a))
  assert.is(
    multipartRelatedHeader(a, 'application/dicom'),
    `multipart/related; type="application/dicom"; boundary=${a}`
  )
})

test('boundaries: up to 200 characters of the RFC 2046 set are read (Orthanc sends 73); written: 70 at most', () => {
  const orthanc = '8f0e3f1c-6bd5-4a39-9b7f-3f0a3b8ad4f2-0c6e9d34-1c1e-4bb0-9a6c-1b1a0f6f6e0e'
  assert.is(orthanc.length, 73)
  for (const boundary of [orthanc, 'x'.repeat(200), "'()+_,-./:=? a"]) {
    const contentType = `multipart/related; type="application/dicom"; boundary="${boundary}"`
    assert.is(multipartBoundary(contentType), boundary)
    const body = utf8(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\nDICM\r\n--${boundary}--\r\n`)
    assert.equal(
      parseMultipartRelated(body, contentType).map(p => text(p.body)),
      ['DICM']
    )
  }
  const bad = [
    'multipart/related',
    'multipart/related; boundary=""',
    `multipart/related; boundary=${'x'.repeat(201)}`,
    'multipart/related; boundary="a "',
    'multipart/related; boundary="a\\\\b"',
    'application/dicom; boundary=x',
    'text'
  ]
  for (const contentType of bad) {
    throwsMalformed(() => multipartBoundary(contentType), contentType)
  }
  assert.throws(() => multipartRelatedHeader(orthanc, 'application/dicom'), TypeError)
})
test.run()

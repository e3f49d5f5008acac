/**
 * Finding the delimiters of a multipart/related body takes time linear in the body, whatever its bytes:
 * hundreds of MB of CR, of CR LF "-" repeats or of boundary look-alikes, whole or in 1 MiB pieces.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import {
  encodeMultipartParts,
  MultipartParser,
  newBoundary,
  parseMultipartRelated
} from '../../protocol/dicomweb/multipart.ts'
import { concat, randomBytes, utf8 } from './multipart-helpers.ts'

test('a large body parses in linear time', () => {
  const big = randomBytes(32 * 1024 * 1024, 9)
  const start = performance.now()
  const parts = [
    { contentType: 'application/dicom', body: big },
    { contentType: 'application/dicom', body: big }
  ]
  const parsed = parseMultipartRelated(concat(encodeMultipartParts(parts, 'b')), 'multipart/related; boundary=b')
  assert.is(parsed.length, 2)
  assert.is(parsed[1]?.body.length, big.length)
  assert.ok(performance.now() - start < 5000, 'parses 64 MB in under 5 s')
})

/** Milliseconds of CPU this process spent since `start` (steadier than the clock while other work shares the cores). */
function cpuMs(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start)
  return (used.user + used.system) / 1000
}

/** CPU time to push `total` bytes made of `piece` repeated, inside one part, to a parser. */
function timePart(boundary: string, piece: Uint8Array, total: number): number {
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

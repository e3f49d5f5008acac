/**
 * STOW-RS from a test, as a client sends it: a multipart/related body streamed in pieces (chunked, waiting
 * whenever the socket asks to), cut off mid-way if asked, and the DICOM JSON answer read.
 */
import { once } from 'node:events'
import { request as httpRequest } from 'node:http'

type Item = Record<string, { Value?: unknown[] }>
export interface StowAnswer {
  status: number
  json: Record<string, { Value?: Item[] }> & { error?: { code: string; message: string } }
}

export interface PostOptions {
  /** destroy the connection once this many bytes are written; the answer is then undefined */
  stopAfter?: number
  /** called with the bytes written so far after each piece the socket took */
  progress?: (written: number) => void
}

/** POSTs `pieces` to `url` as a chunked body with `headers`. */
export async function postStream(
  url: string,
  headers: Record<string, string>,
  pieces: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  options: PostOptions = {}
): Promise<StowAnswer | undefined> {
  const request = httpRequest(url, { method: 'POST', headers: { accept: 'application/dicom+json', ...headers } })
  const answered = new Promise<StowAnswer>((resolve, reject) => {
    request.on('response', response => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('end', () => {
        resolve({ status: response.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString() || '{}') })
      })
      response.on('error', reject)
    })
    request.on('error', reject)
  })
  answered.catch(() => {})
  let written = 0
  try {
    for await (const piece of pieces) {
      if (options.stopAfter !== undefined && written + piece.length > options.stopAfter) {
        request.write(piece.subarray(0, options.stopAfter - written))
        await new Promise(resolve => setTimeout(resolve, 200))
        request.destroy()
        return undefined
      }
      written += piece.length
      if (!request.write(piece)) await once(request, 'drain')
      options.progress?.(written)
    }
    request.end()
  } catch (error) {
    if (request.destroyed) return await answered // answered before the body's end
    throw error
  }
  return await answered
}

const latin1 = (text: string): Buffer => Buffer.from(text, 'latin1')

export const relatedType = (boundary: string): string =>
  `multipart/related; type="application/dicom"; boundary=${boundary}`

/** The delimiter line and headers that open a part. */
export const partHead = (boundary: string, first: boolean, type = 'application/dicom'): Buffer =>
  latin1(`${first ? '' : '\r\n'}--${boundary}\r\nContent-Type: ${type}\r\n\r\n`)

export const closing = (boundary: string): Buffer => latin1(`\r\n--${boundary}--\r\n`)

/** A multipart body of `files`, each cut into pieces of `pieceSize` bytes. */
export function* multipartBody(files: Uint8Array[], boundary: string, pieceSize = 16 * 1024): Generator<Uint8Array> {
  for (const [i, file] of files.entries()) {
    yield partHead(boundary, i === 0)
    for (let at = 0; at < file.length; at += pieceSize) yield file.subarray(at, at + pieceSize)
  }
  yield closing(boundary)
}

/** One part of `total` bytes: `head`, then `fill` repeated (the same buffer each time: nothing piles up). */
export function* onePart(boundary: string, head: Uint8Array, fill: Uint8Array, total: number): Generator<Uint8Array> {
  yield partHead(boundary, true)
  yield head
  for (let sent = head.length; sent < total; sent += fill.length) {
    yield fill.subarray(0, Math.min(fill.length, total - sent))
  }
  yield closing(boundary)
}

/** Attribute `tag` of every item of sequence `sequence` in a DICOM JSON answer. */
const each = (answer: StowAnswer | undefined, sequence: string, tag: string): unknown[] =>
  (answer?.json[sequence]?.Value ?? []).map(item => item[tag]?.Value?.[0])
/** The SOP Instance UIDs of ReferencedSOPSequence. */
export const storedSops = (answer: StowAnswer | undefined): unknown[] => each(answer, '00081199', '00081155')
/** The comments (0000,0902) of FailedSOPSequence. */
export const failureComments = (answer: StowAnswer | undefined): string[] =>
  each(answer, '00081198', '00000902').map(String)
/** The reasons (0008,1197) of FailedSOPSequence. */
export const failureReasons = (answer: StowAnswer | undefined): unknown[] => each(answer, '00081198', '00081197')

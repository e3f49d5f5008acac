/**
 * HTTP/1.1 over a raw socket, for requests no HTTP client would send (a malformed request line, a header
 * without a colon, a URL that does not decode), and the documented error shape they must be answered in.
 */
import { promises as fs } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import * as assert from 'uvu/assert'
import { ROOT } from '../../scripts/lib/cli.ts'

export interface RawResponse {
  status: number
  headers: Record<string, string>
  body: string
}

/**
 * Sends `request` as given and reads the answer: the whole of it when the server closes the connection, or
 * as much as Content-Length says. Rejects when nothing complete arrives within `timeoutMs`. `halfClose` ends
 * the sending side after the request (a body shorter than its Content-Length then ends there).
 */
export async function rawRequest(
  port: number,
  request: string | Buffer,
  options: { timeoutMs?: number; halfClose?: boolean } = {}
): Promise<RawResponse> {
  const timeoutMs = options.timeoutMs ?? 5_000
  return await new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let received = Buffer.alloc(0)
    let settled = false
    const finish = (error?: Error): void => {
      if (settled) return
      const response = parse(received)
      if (response === undefined && error === undefined) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      if (response !== undefined) resolve(response)
      else reject(error)
    }
    const timer = setTimeout(() => {
      finish(new Error(`no complete answer within ${timeoutMs} ms; got ${JSON.stringify(received.toString('latin1'))}`))
    }, timeoutMs)
    socket.on('data', chunk => {
      received = Buffer.concat([received, chunk])
      finish()
    })
    // The server may close before it has read all we sent (a body it refused): what it answered counts.
    socket.on('error', error => {
      finish(error)
    })
    socket.on('close', () => {
      finish(new Error(`closed without a complete answer: ${JSON.stringify(received.toString('latin1'))}`))
    })
    socket.write(request)
    if (options.halfClose === true) socket.end()
  })
}

function parse(bytes: Buffer): RawResponse | undefined {
  const end = bytes.indexOf('\r\n\r\n')
  if (end < 0) return undefined
  const [statusLine = '', ...lines] = bytes.subarray(0, end).toString('latin1').split('\r\n')
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1])
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
  }
  const length = headers['content-length']
  const body = bytes.subarray(end + 4)
  if (length === undefined || body.length < Number(length)) return undefined
  return { status, headers, body: body.subarray(0, Number(length)).toString('utf8') }
}

/** Every documented code with its HTTP status, from docs/ERRORS.md. */
export async function documentedCodes(): Promise<Map<string, number>> {
  const doc = await fs.readFile(join(ROOT, 'docs/ERRORS.md'), 'utf8')
  return new Map([...doc.matchAll(/^\| `(RADMESH_[A-Z_]+)` \| (\d+) \|/gm)].map(m => [m[1] as string, Number(m[2])]))
}

/**
 * Asserts an answer is `status` with `{ error: { code, message } }`, `code` documented with that status;
 * returns the code.
 */
export function assertDocumentedError(
  documented: Map<string, number>,
  what: string,
  status: number,
  body: string,
  code?: string
): string {
  let parsed: { error?: { code?: unknown; message?: unknown } } = {}
  try {
    parsed = JSON.parse(body) as typeof parsed
  } catch {
    assert.unreachable(`${what}: the body is not JSON: ${body.slice(0, 200)}`)
  }
  const answered = parsed.error?.code
  assert.type(answered, 'string', `${what}: error.code (${body.slice(0, 200)})`)
  assert.type(parsed.error?.message, 'string', `${what}: error.message`)
  const documentedStatus = documented.get(answered as string)
  assert.is(documentedStatus, status, `${what}: ${String(answered)} is in docs/ERRORS.md with status ${status}`)
  if (code !== undefined) assert.is(answered, code, what)
  return answered as string
}

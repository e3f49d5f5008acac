/**
 * Every refusal of the HTTP server is in the documented shape: the status of a code listed in docs/ERRORS.md
 * and `{ error: { code, message } }`. Broken requests are sent over a raw socket to a real node: what Node's
 * parser refuses, what fastify's router and body parsers refuse, and radmesh's own refusals.
 */
import { Socket } from 'node:net'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { handleClientError } from '../../node/http/errors.ts'
import { createScratchConsortium } from '../../scripts/lib/consortium.ts'
import { type StartedNode, startNode } from '../../scripts/lib/node-process.ts'
import { assertDocumentedError, documentedCodes, rawRequest } from '../helpers/raw-http.ts'

let node: StartedNode
let documented: Map<string, number>
const CASE = '0123456789abcdef01234567'

test.before(async () => {
  const consortium = await createScratchConsortium('Errors')
  node = await startNode(await consortium.member('Errors Site', 'site'))
  documented = await documentedCodes()
})

test.after(async () => {
  await node?.kill()
})

const auth = (): string => `Authorization: Bearer ${node.token}`
/** A request as bytes: the request line, `Host`, the given header lines, the body as given. */
const http = (line: string, headers: string[] = [], body = ''): string =>
  `${line}\r\n${['Host: x', ...headers].join('\r\n')}\r\n\r\n${body}`
const JSON_TYPE = 'Content-Type: application/json'
const CHUNKED = 'Transfer-Encoding: chunked'
const json = (line: string, body: string, type = 'application/json'): string =>
  http(line, [auth(), `Content-Type: ${type}`, `Content-Length: ${Buffer.byteLength(body)}`, 'Connection: close'], body)

interface Case {
  what: string
  request: () => string
  status: number
  code: string
  halfClose?: boolean
}

const BAD = { status: 400, code: 'RADMESH_BAD_REQUEST' }
const cases: Case[] = [
  { what: 'a request line that is not HTTP', request: () => 'HELLO THERE\r\n\r\n', ...BAD },
  { what: 'an unknown method', request: () => http('BREW /api/health HTTP/1.1'), ...BAD },
  { what: 'a header line without a colon', request: () => http('GET /api/health HTTP/1.1', ['Not a header']), ...BAD },
  {
    what: 'both Content-Length and Transfer-Encoding (request smuggling)',
    request: () => http('POST /api/duty HTTP/1.1', [auth(), 'Content-Length: 2', CHUNKED], '0\r\n\r\n'),
    ...BAD
  },
  {
    what: 'a chunked body with a chunk size that is not hex',
    request: () => http('PUT /api/duty HTTP/1.1', [auth(), JSON_TYPE, CHUNKED], 'zz\r\n'),
    ...BAD
  },
  {
    what: 'headers over 16 KiB',
    request: () => http('GET /api/health HTTP/1.1', [`X-Filler: ${'a'.repeat(20_000)}`]),
    status: 431,
    code: 'RADMESH_HEADERS_TOO_LARGE'
  },
  {
    what: 'a URL over 16 KiB',
    request: () => http(`GET /dicom-web/studies?PatientName=${'A'.repeat(20_000)} HTTP/1.1`),
    status: 431,
    code: 'RADMESH_HEADERS_TOO_LARGE'
  },
  {
    what: 'a path that is not valid percent-encoded UTF-8',
    request: () => http('GET /api/instances/%E0%A4%A HTTP/1.1', [auth(), 'Connection: close']),
    ...BAD
  },
  {
    what: "a path parameter over fastify's maxParamLength",
    request: () => http(`GET /api/instances/${'1.'.repeat(100)}1 HTTP/1.1`, [auth(), 'Connection: close']),
    ...BAD
  },
  {
    what: 'a JSON body over the 1 MiB limit',
    request: () => http('PUT /api/duty HTTP/1.1', [auth(), JSON_TYPE, 'Content-Length: 2000000'], '{'),
    status: 413,
    code: 'RADMESH_TOO_LARGE'
  },
  {
    what: 'a chunked JSON body that grows over the 1 MiB limit',
    request: () => {
      const chunks = Array.from({ length: 20 }, () => `10000\r\n${'a'.repeat(0x10000)}\r\n`).join('')
      return http('PUT /api/duty HTTP/1.1', [auth(), JSON_TYPE, CHUNKED], chunks)
    },
    status: 413,
    code: 'RADMESH_TOO_LARGE'
  },
  {
    what: 'a body of a media type the route does not take',
    request: () => json('PUT /api/duty HTTP/1.1', '<shifts/>', 'application/xml'),
    status: 415,
    code: 'RADMESH_UNSUPPORTED_MEDIA_TYPE'
  },
  { what: 'a body that is not valid JSON', request: () => json('PUT /api/duty HTTP/1.1', '{"shifts": ['), ...BAD },
  { what: 'an empty JSON body', request: () => json(`POST /api/worklist/${CASE}/cancel HTTP/1.1`, ''), ...BAD },
  { what: 'JSON with a __proto__ key', request: () => json('PUT /api/duty HTTP/1.1', '{"__proto__": {}}'), ...BAD },
  {
    what: 'a body that ends before its Content-Length',
    request: () => http('PUT /api/duty HTTP/1.1', [auth(), JSON_TYPE, 'Content-Length: 5'], '{}'),
    halfClose: true,
    ...BAD
  },
  {
    what: 'no credentials',
    request: () => http('GET /api/worklist HTTP/1.1', ['Connection: close']),
    status: 401,
    code: 'RADMESH_UNAUTHORIZED'
  },
  {
    what: 'a route that does not exist',
    request: () => http('DELETE /api/health HTTP/1.1', [auth(), 'Connection: close']),
    status: 404,
    code: 'RADMESH_NOT_FOUND'
  },
  {
    what: 'an Accept DICOMweb cannot answer',
    request: () => http('GET /dicom-web/studies HTTP/1.1', [auth(), 'Accept: text/html', 'Connection: close']),
    status: 406,
    code: 'RADMESH_NOT_ACCEPTABLE'
  }
]

for (const c of cases) {
  test(`${c.what} is answered ${c.status} ${c.code}, in the documented shape`, async () => {
    const response = await rawRequest(node.httpPort, c.request(), { halfClose: c.halfClose ?? false })
    assert.is(response.status, c.status, `${c.what}: ${response.body.slice(0, 200)}`)
    assert.match(response.headers['content-type'] ?? '', /^application\/json/, c.what)
    assertDocumentedError(documented, c.what, response.status, response.body, c.code)
  })
}

test('the node still answers after every broken request', async () => {
  const response = await rawRequest(node.httpPort, http('GET /api/health HTTP/1.1', ['Connection: close']))
  assert.is(response.status, 200)
  assert.is((JSON.parse(response.body) as { ok: boolean }).ok, true)
})

test('a request that does not arrive in time is answered 408 RADMESH_REQUEST_TIMEOUT', async () => {
  // Node's headersTimeout is a minute: the handler is given the error Node gives it, on a socket no response owns.
  const written: string[] = []
  const socket = new Socket()
  Object.defineProperty(socket, 'writable', { value: true })
  socket.write = ((data: string) => {
    written.push(data)
    return true
  }) as typeof socket.write
  const error = Object.assign(new Error('Request timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' })
  handleClientError(error, socket)
  const [answer = ''] = written
  assert.match(answer, /^HTTP\/1\.1 408 Request Timeout\r\n/)
  const body = answer.slice(answer.indexOf('\r\n\r\n') + 4)
  assertDocumentedError(documented, 'timeout', 408, body, 'RADMESH_REQUEST_TIMEOUT')
  assert.match(answer, `Content-Length: ${Buffer.byteLength(body)}\r\n`)
})

for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
  test(`GET /viewer/codecs/${name} is 404 RADMESH_NOT_FOUND, without a login`, async () => {
    const response = await fetch(`${node.http}/viewer/codecs/${name}`)
    assert.is(response.status, 404)
    assertDocumentedError(documented, name, 404, await response.text(), 'RADMESH_NOT_FOUND')
  })
}

test('a codec the viewer loads is still served', async () => {
  const response = await fetch(`${node.http}/viewer/codecs/charlswasm_decode.wasm`)
  assert.is(response.status, 200)
  assert.is(response.headers.get('content-type'), 'application/wasm')
})

test.run()

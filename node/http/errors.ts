/**
 * Every error the HTTP server answers, in the one shape docs/ERRORS.md documents: the status of its code and
 * `{ "error": { "code", "message" } }`. That holds for radmesh's own errors, for fastify's (a body too large,
 * a media type no parser takes, invalid JSON, a URL that does not decode, a schema that refuses a parameter)
 * and for what Node's HTTP parser refuses before fastify sees a request (a malformed request line, headers
 * too large, a request that does not arrive in time), which is written straight to the socket.
 */
import { STATUS_CODES, maxHeaderSize } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyError, FastifyReply, FastifyRequest, FastifySchemaValidationError } from 'fastify'
import { BadRequestError, ERROR_TABLE, type ErrorCode, isRadmeshError } from '../errors.ts'

export interface ErrorBody {
  error: { code: ErrorCode; message: string }
}

/** The code for a status another library answered with; a status radmesh has no code for becomes 400. */
const CODE_OF_STATUS = new Map<number, ErrorCode>([
  [400, 'RADMESH_BAD_REQUEST'],
  [401, 'RADMESH_UNAUTHORIZED'],
  [404, 'RADMESH_NOT_FOUND'],
  [406, 'RADMESH_NOT_ACCEPTABLE'],
  [408, 'RADMESH_REQUEST_TIMEOUT'],
  [413, 'RADMESH_TOO_LARGE'],
  [415, 'RADMESH_UNSUPPORTED_MEDIA_TYPE'],
  [431, 'RADMESH_HEADERS_TOO_LARGE'],
  [503, 'RADMESH_BUSY']
])

/** What fastify's own errors mean, said for a radmesh user (fastify's texts name its internals). */
function fastifyMessage(error: FastifyError, request: FastifyRequest): string | undefined {
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return `the request body is over this route's limit of ${request.routeOptions.bodyLimit ?? 'its'} bytes`
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return (
        `this route takes no body of type "${(request.headers['content-type'] ?? '').slice(0, 100)}"` +
        ' (the JSON API takes application/json)'
      )
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return 'the request body is not as long as its Content-Length says'
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return 'the body is empty but its Content-Type says JSON'
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return 'the body is not valid JSON'
    case 'FST_ERR_BAD_URL':
      return "the URL's path is not valid percent-encoded UTF-8"
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return 'a path segment is over 100 characters (a UID has at most 64)'
    default:
      return undefined
  }
}

const answer = (code: ErrorCode, message: string, internal = false): ErrorAnswer => ({
  status: ERROR_TABLE[code].httpStatus,
  body: { error: { code, message } },
  internal
})

export interface ErrorAnswer {
  status: number
  body: ErrorBody
  internal: boolean
}

/** The status and body for any error a request ended in; `internal` when it is a bug to log. */
export function errorAnswer(error: unknown, request: FastifyRequest): ErrorAnswer {
  if (isRadmeshError(error)) return answer(error.code, error.message, error.httpStatus >= 500)
  const fastifyError = error as FastifyError
  const status = fastifyError.statusCode ?? 500
  if (status >= 400 && status < 500) {
    // A parameter too long is a bad parameter, whatever status fastify gives it (414).
    const code = fastifyError.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'RADMESH_BAD_REQUEST' : CODE_OF_STATUS.get(status)
    return answer(code ?? 'RADMESH_BAD_REQUEST', fastifyMessage(fastifyError, request) ?? fastifyError.message)
  }
  if (status === 503) return answer('RADMESH_BUSY', ERROR_TABLE.RADMESH_BUSY.summary)
  return answer('RADMESH_INTERNAL', ERROR_TABLE.RADMESH_INTERNAL.summary, true)
}

/** fastify's error handler: every error a route, hook, parser or schema throws. */
export async function handleError(error: unknown, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const { status, body, internal } = errorAnswer(error, request)
  if (internal) request.log.error({ err: error }, 'request failed')
  return await reply.status(status).type('application/json; charset=utf-8').send(body)
}

/**
 * fastify's `frameworkErrors`: what its router refuses before a route is found (a path that does not decode,
 * a parameter over `maxParamLength`). These never reach the error handler.
 */
export function handleFrameworkError(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  void handleError(error, request, reply)
}

/** What a schema's validator says about one fault (ajv's and TypeBox's name the same things a little apart). */
interface SchemaFaultParams {
  missingProperty?: unknown
  requiredProperties?: unknown
  allowedValues?: unknown
  additionalProperties?: unknown
}

const listOf = (value: unknown): string | undefined =>
  typeof value === 'string' ? value : Array.isArray(value) ? value.join(', ') : undefined

/**
 * fastify's `schemaErrorFormatter`: a schema's refusal as a BadRequestError that names the parameter (or body
 * field) and what is wrong with it.
 */
export function schemaError(errors: FastifySchemaValidationError[], dataVar: string): Error {
  const where = dataVar === 'querystring' ? 'query parameter' : dataVar === 'params' ? 'path parameter' : dataVar
  // A field no schema allows is said once, as the object's extra field (TypeBox also reports it as `false`).
  const said = new Set(
    errors
      .filter(e => e.keyword !== 'boolean')
      .map(e => {
        const name = e.instancePath.replace(/^\//, '').replaceAll('/', '.')
        const params = e.params as SchemaFaultParams
        const missing = listOf(params.missingProperty ?? params.requiredProperties)
        const extra = listOf(params.additionalProperties)
        const subject = name === '' ? where : `${where} ${name}`
        if (missing !== undefined) return `${where} ${name === '' ? '' : `${name}.`}${missing} is missing`
        if (extra !== undefined) return `${subject} has a field it does not take: ${extra}`
        const allowed = listOf(params.allowedValues)
        return `${subject} ${allowed === undefined ? (e.message ?? 'is not valid') : `must be one of ${allowed}`}`
      })
  )
  return new BadRequestError([...said].slice(0, 3).join('; ') || `the ${where} is not valid`)
}

/** Node's HTTP parser errors, by the code Node gives them. */
function clientErrorAnswer(error: NodeJS.ErrnoException): { code: ErrorCode; message: string } {
  if (error.code === 'HPE_HEADER_OVERFLOW') {
    const message = `the request line and headers are over ${maxHeaderSize} bytes`
    return { code: 'RADMESH_HEADERS_TOO_LARGE', message }
  }
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return { code: 'RADMESH_REQUEST_TIMEOUT', message: 'the request did not arrive in full in time' }
  }
  const what = typeof error.code === 'string' && /^HPE_[A-Z_]{1,40}$/.test(error.code) ? ` (${error.code})` : ''
  return { code: 'RADMESH_BAD_REQUEST', message: `not a valid HTTP/1.1 request${what}` }
}

/** The bytes of a whole HTTP/1.1 error answer that closes the connection, for a socket no response owns. */
export function rawErrorResponse(code: ErrorCode, message: string): string {
  const status = ERROR_TABLE[code].httpStatus
  const body = JSON.stringify({ error: { code, message } })
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\nContent-Type: application/json; charset=utf-8\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  )
}

/**
 * fastify's `clientErrorHandler` (Node's 'clientError'): answers in the documented shape, unless the client is
 * gone or a response on this connection has begun (writing then would corrupt it, as Node's own handler knows),
 * then closes the connection. The request's bytes (`rawPacket`) are never logged: they may hold patient data.
 */
export function handleClientError(error: NodeJS.ErrnoException, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return
  const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage
  if (socket.writable && (inFlight === undefined || inFlight === null || inFlight.headersSent !== true)) {
    const { code, message } = clientErrorAnswer(error)
    socket.write(rawErrorResponse(code, message))
  }
  socket.destroy()
}

/**
 * What the HTTP server's log may say about a request. Query values are patient data as often as not
 * (`?PatientName=DOE^JOHN`, `?PatientID=…`), so a logged URL keeps the parameter names and drops every value;
 * a path keeps its UIDs, keywords and numbers and drops any segment that could be free text (anything
 * percent-encoded or long) and the one-time code of a sign-in link. Headers (tokens, cookies) and bodies are
 * never logged.
 */
import type { FastifyRequest } from 'fastify'

/** A path segment that is a UID, a keyword, a tag, a case id or a frame list: nothing a name can hide in. */
const PLAIN_SEGMENT = /^[A-Za-z0-9._,~*-]{0,64}$/
const PARAMETER_NAME = /^[A-Za-z0-9._-]{1,64}$/
/** Path segments after which the next one is a secret. */
const SECRET_AFTER = new Set(['signin'])
/** A URL is at most 16 KiB (Node's maxHeaderSize); the log keeps this many of its parameters. */
const MAX_LOGGED_PARAMETERS = 64
export const REDACTED = '…'

/** `url` (a path and query, as in a request line) with every query value and every free-text segment redacted. */
export function loggableUrl(url: string): string {
  const mark = url.indexOf('?')
  const segments = (mark < 0 ? url : url.slice(0, mark)).split('/')
  const path = segments
    .map((segment, i) => {
      if (i > 0 && SECRET_AFTER.has(segments[i - 1] as string)) return REDACTED
      return PLAIN_SEGMENT.test(segment) ? segment : REDACTED
    })
    .join('/')
  if (mark < 0) return path
  const parameters = url
    .slice(mark + 1)
    .split('&')
    .filter(parameter => parameter !== '')
  const names = parameters.slice(0, MAX_LOGGED_PARAMETERS).map(parameter => {
    const equals = parameter.indexOf('=')
    const name = equals < 0 ? parameter : parameter.slice(0, equals)
    if (!PARAMETER_NAME.test(name)) return REDACTED
    return equals < 0 ? name : `${name}=${REDACTED}`
  })
  if (parameters.length > MAX_LOGGED_PARAMETERS) names.push(REDACTED)
  return `${path}?${names.join('&')}`
}

/** The `req` serializer of the HTTP logger (fastify's own logs the whole URL and the Host header). */
export function loggableRequest(request: FastifyRequest): Record<string, unknown> {
  return {
    method: request.method,
    url: loggableUrl(request.url),
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort
  }
}

/**
 * Who may use the HTTP API: a caller with the bearer token from HOME/api-token (scripts, the CLI), or a
 * browser holding a session cookie obtained through a one-time sign-in URL (the viewer). Only
 * `/api/health` and the sign-in route are open. Tokens are compared in constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type {} from '@fastify/cookie'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { AuditActor } from '../audit/log.ts'
import { RadmeshError } from '../errors.ts'

declare module 'fastify' {
  interface FastifyRequest {
    actor: AuditActor
    session?: string
  }
}

/**
 * Requests the viewer makes on its own (polling, live streams) send this header (or, where a browser API
 * cannot set headers, `?background=1`): they are authenticated, but do not count as the user's activity,
 * so an unattended viewer is still logged off.
 */
export const BACKGROUND_HEADER = 'x-radmesh-background'

export const SESSION_COOKIE = 'radmesh_session'
/** HIPAA automatic logoff: a viewer session ends after this long without a request. */
export const DEFAULT_SESSION_IDLE_MS = 15 * 60_000

export const newSecret = (): string => randomBytes(32).toString('base64url')

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

export class Sessions {
  private readonly apiToken: string
  private readonly idleMs: number
  private readonly oneTimeCodes = new Set<string>()
  private readonly sessions = new Map<string, number>()

  constructor(apiToken: string, idleMs = DEFAULT_SESSION_IDLE_MS) {
    this.apiToken = apiToken
    this.idleMs = idleMs
  }

  /** A code for one sign-in; it is spent by the first browser that uses it. */
  issueSignInCode(): string {
    const code = newSecret()
    this.oneTimeCodes.add(code)
    return code
  }

  /** Spends a sign-in code and returns a new session id, or undefined when the code is unknown or used. */
  redeem(code: string): string | undefined {
    if (!this.oneTimeCodes.delete(code)) return undefined
    const session = newSecret()
    this.sessions.set(session, Date.now())
    return session
  }

  isTokenValid(token: string): boolean {
    return sameSecret(token, this.apiToken)
  }

  /** Whether the session is alive; `activity` (the user did something) restarts its idle time. */
  touchSession(session: string, now = Date.now(), activity = true): boolean {
    const last = this.sessions.get(session)
    if (last === undefined) return false
    if (now - last > this.idleMs) {
      this.sessions.delete(session)
      return false
    }
    if (activity) this.sessions.set(session, now)
    return true
  }

  isAlive(session: string): boolean {
    return this.touchSession(session, Date.now(), false)
  }

  signOut(session: string): void {
    this.sessions.delete(session)
  }

  get idleTimeoutMs(): number {
    return this.idleMs
  }

  /** The fastify `onRequest` hook: sets `request.actor` (who, for the audit trail) or refuses. */
  readonly authenticate = async (request: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    const header = request.headers.authorization
    if (header !== undefined) {
      const match = /^Bearer (.+)$/.exec(header)
      if (match?.[1] !== undefined && this.isTokenValid(match[1])) {
        request.actor = { type: 'api', id: 'api-token', address: request.ip }
        return
      }
      throw new RadmeshError('RADMESH_UNAUTHORIZED', 'the bearer token is wrong; it is in HOME/api-token')
    }
    // Read by @fastify/cookie, registered before this hook (server.ts).
    const session = request.cookies[SESSION_COOKIE]
    const activity = request.headers[BACKGROUND_HEADER] !== '1' && !/[?&]background=1(&|$)/.test(request.url)
    if (session !== undefined && this.touchSession(session, Date.now(), activity)) {
      request.session = session
      // The session id is a secret: the audit trail names it by a short hash.
      const id = `session-${createHash('sha256').update(session).digest('hex').slice(0, 12)}`
      request.actor = { type: 'viewer', id, address: request.ip }
      return
    }
    throw new RadmeshError(
      'RADMESH_UNAUTHORIZED',
      'sign in: send "Authorization: Bearer TOKEN" (TOKEN is in ' +
        'HOME/api-token) or open the one-time viewer URL that "radmesh start" printed'
    )
  }
}

/**
 * How CLI commands talk to the node running on a HOME: its address from HOME/running.json, its token
 * from HOME/api-token. A node that is not running gives one clear error, not a connection trace.
 */
import { promises as fs } from 'node:fs'
import { HomeError, NodeNotRunningError, RadmeshError, type ErrorCode, ERROR_TABLE } from '../errors.ts'
import { exists } from '../files.ts'
import { homePaths } from '../identity/home.ts'

export interface NodeClient {
  url: string
  /** `body`: JSON, bytes or a stream of bytes (sent as `contentType`); `timeoutMs`: 30 s unless told */
  request<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
    contentType?: string,
    timeoutMs?: number
  ): Promise<T>
}

export async function connectToNode(home: string): Promise<NodeClient> {
  const paths = homePaths(home)
  if (!(await exists(paths.home))) throw new HomeError('RADMESH_HOME_MISSING', `HOME ${home} does not exist`)
  const notRunning = new NodeNotRunningError(
    `no radmesh node is running on ${home}; start it with "radmesh start --home ${home}"`
  )
  let url: string
  let token: string
  try {
    url = (JSON.parse(await fs.readFile(paths.running, 'utf8')) as { http: string }).http
    token = (await fs.readFile(paths.apiToken, 'utf8')).trim()
  } catch {
    throw notRunning
  }
  return {
    url,
    async request<T>(
      method: string,
      path: string,
      body?: unknown,
      contentType?: string,
      timeoutMs = 30_000
    ): Promise<T> {
      // Bytes, or a stream of them (a file sent as it is read: `duplex` lets fetch send a stream).
      const raw = body instanceof Uint8Array || body instanceof ReadableStream
      let response: Response
      try {
        response = await fetch(`${url}${path}`, {
          method,
          headers: {
            authorization: `Bearer ${token}`,
            ...(body === undefined
              ? {}
              : { 'content-type': raw ? (contentType ?? 'application/octet-stream') : 'application/json' })
          },
          ...(body === undefined ? {} : { body: raw ? (body as unknown as BodyInit) : JSON.stringify(body) }),
          ...(body instanceof ReadableStream ? { duplex: 'half' } : {}),
          signal: AbortSignal.timeout(timeoutMs)
        } as RequestInit)
      } catch {
        throw notRunning
      }
      const payload = (await response.json().catch(() => ({}))) as { error?: { code?: string; message?: string } }
      if (!response.ok) {
        const code = (payload.error?.code ?? 'RADMESH_INTERNAL') as ErrorCode
        const message = `the node answered ${response.status}: ${payload.error?.message ?? response.statusText}`
        throw new RadmeshError(Object.hasOwn(ERROR_TABLE, code) ? code : 'RADMESH_INTERNAL', message)
      }
      return payload as T
    }
  }
}

/**
 * Talking to this reader's own node. Requests the viewer makes by itself (polling, live streams) are
 * marked as background, so they do not keep an unattended session alive (HIPAA automatic logoff); when
 * the node says 401 the viewer shows the signed-out screen and stops.
 */

export class ApiError extends Error {
  readonly status: number
  readonly code: string
  constructor(status: number, code: string, message: string) {
    super(message)
    this.name = 'ApiError'
    this.status = status
    this.code = code
  }
}

const signedOutListeners = new Set<() => void>()
let signedOut = false

export function onSignedOut(listener: () => void): void {
  signedOutListeners.add(listener)
}

export function isSignedOut(): boolean {
  return signedOut
}

export function markSignedOut(): void {
  if (signedOut) return
  signedOut = true
  for (const listener of signedOutListeners) listener()
}

export interface RequestOptions {
  method?: string
  body?: unknown
  background?: boolean
  accept?: string
  signal?: AbortSignal
}

export async function request(path: string, options: RequestOptions = {}): Promise<Response> {
  if (signedOut) throw new ApiError(401, 'RADMESH_UNAUTHORIZED', 'signed out')
  const headers: Record<string, string> = {}
  if (options.background === true) headers['x-radmesh-background'] = '1'
  if (options.accept !== undefined) headers['accept'] = options.accept
  let body: BodyInit | undefined
  if (options.body instanceof Uint8Array) {
    headers['content-type'] = 'application/octet-stream'
    body = options.body as Uint8Array<ArrayBuffer>
  } else if (options.body !== undefined) {
    headers['content-type'] = 'application/json'
    body = JSON.stringify(options.body)
  }
  const response = await fetch(path, {
    method: options.method ?? 'GET',
    headers,
    ...(body === undefined ? {} : { body }),
    credentials: 'same-origin',
    ...(options.signal === undefined ? {} : { signal: options.signal })
  })
  if (response.status === 401) {
    markSignedOut()
    throw new ApiError(401, 'RADMESH_UNAUTHORIZED', 'signed out')
  }
  if (!response.ok) {
    let code = 'RADMESH_HTTP'
    let message = `${response.status} ${response.statusText}`
    try {
      const error = ((await response.json()) as { error?: { code?: string; message?: string } }).error
      code = error?.code ?? code
      message = error?.message ?? message
    } catch {}
    throw new ApiError(response.status, code, message)
  }
  return response
}

export async function json<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const response = await request(path, options)
  return response.status === 204 ? (undefined as T) : ((await response.json()) as T)
}

// What the node's API answers: the same schemas the node checks its answers against (protocol/api), so the
// viewer's idea of a body cannot drift from the node's.
export type {
  Availability,
  CriticalResult,
  DutyEntry,
  ReportView,
  Session,
  WorklistEntry
} from '../../protocol/api/index.ts'

/**
 * Talking to this reader's own node. Requests the viewer makes by itself (polling, live streams) are
 * marked as background, so they do not keep an unattended session alive (HIPAA automatic logoff); when
 * the node says 401 the viewer shows the signed-out screen and stops.
 */

export class ApiError extends Error {
  readonly status: number
  readonly code: string
  constructor (status: number, code: string, message: string) {
    super(message)
    this.name = 'ApiError'
    this.status = status
    this.code = code
  }
}

const signedOutListeners = new Set<() => void>()
let signedOut = false

export function onSignedOut (listener: () => void): void {
  signedOutListeners.add(listener)
}

export function isSignedOut (): boolean {
  return signedOut
}

export function markSignedOut (): void {
  if (signedOut) return
  signedOut = true
  for (const listener of signedOutListeners) listener()
}

export interface RequestOptions { method?: string, body?: unknown, background?: boolean, accept?: string, signal?: AbortSignal }

export async function request (path: string, options: RequestOptions = {}): Promise<Response> {
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
  const response = await fetch(path, { method: options.method ?? 'GET', headers, ...(body === undefined ? {} : { body }), credentials: 'same-origin', ...(options.signal === undefined ? {} : { signal: options.signal }) })
  if (response.status === 401) {
    markSignedOut()
    throw new ApiError(401, 'RADMESH_UNAUTHORIZED', 'signed out')
  }
  if (!response.ok) {
    let code = 'RADMESH_HTTP'
    let message = `${response.status} ${response.statusText}`
    try {
      const error = (await response.json() as { error?: { code?: string, message?: string } }).error
      code = error?.code ?? code
      message = error?.message ?? message
    } catch {}
    throw new ApiError(response.status, code, message)
  }
  return response
}

export async function json<T> (path: string, options: RequestOptions = {}): Promise<T> {
  const response = await request(path, options)
  return response.status === 204 ? undefined as T : await response.json() as T
}

// What the node's API answers (CONTRACT.md)

export interface Session { actor: string, idleTimeoutMs: number | null, name: string, role: string, subspecialties: string[], peerId: string }
export interface WorklistEntry {
  caseId: string, studyInstanceUid: string, site: string, siteName?: string, priority: 'STAT' | 'URGENT' | 'ROUTINE', subspecialty: string
  status: 'SCHEDULED' | 'IN PROGRESS' | 'COMPLETED' | 'CANCELED', claimedBy: string | null, claimedByName?: string | null
  createdAt: string, dueAt: string, modalities?: string[], bodyPart?: string, consultants: string[], readers?: string[]
}
export interface Availability { instancesTotal: number, instancesLocal: number, bytesTotal: number, bytesLocal: number, complete: boolean, state?: string }
export interface DutyEntry { peerId: string, name: string, onDuty: boolean }
export interface ReportView {
  status: 'DRAFT' | 'PRELIMINARY' | 'FINAL' | 'AMENDED'
  sections: Record<string, string>
  authors: Array<{ peerId: string, name?: string }>
  signatures: Array<{ peerId: string, name: string, status: string, at: string, verified: boolean }>
  addenda: Array<{ text: string, by?: string, at?: string }>
}

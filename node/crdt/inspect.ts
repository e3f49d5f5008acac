/**
 * Untrusted Yjs updates are opened in a worker thread before the node touches them: a crafted update can
 * hang Yjs 13.6.33 (yjs issue 687, open). The worker decodes the update and applies it to an empty document
 * under a memory limit and a deadline; an update that fails, or takes too long (the worker is then
 * replaced), is refused. What comes back is a plain description of the update's items and deletions, which
 * the document's validator judges.
 */
import { Worker } from 'node:worker_threads'

export interface InspectedItem {
  client: number
  clock: number
  length: number
  /** whether the item was inserted next to another (a text edit, a map overwrite) rather than on its own */
  hasOrigin: boolean
  /** the root type the item belongs to, when the update names it (items with an origin do not) */
  root: string | null
  /** the map key, for items of a map */
  parentSub: string | null
  kind: 'any' | 'string' | 'deleted' | 'type' | 'format' | 'embed' | 'json' | 'binary' | 'doc'
  /** the values of an `any` item (a map entry's value) */
  values?: unknown[]
}

export interface InspectedUpdate {
  items: InspectedItem[]
  deletes: Array<{ client: number, clock: number, length: number }>
  /** GC and skip structs (deleted or missing content) */
  otherStructs: number
}

/**
 * An update a node will not apply. `penalty` is what it counts against the sender: 0 when the update may
 * be fine later (it depends on records not here yet) or came from an honest race, more when it cannot be.
 * `code` is what a local writer (the viewer) is told: RADMESH_REPORT_FINAL when the update would change a
 * FINAL report, RADMESH_NOT_ALLOWED for anything else.
 */
export class UpdateRefusedError extends Error {
  readonly penalty: number
  readonly code: 'RADMESH_NOT_ALLOWED' | 'RADMESH_REPORT_FINAL'
  constructor (message: string, penalty = 1, code: UpdateRefusedError['code'] = 'RADMESH_NOT_ALLOWED') {
    super(message)
    this.name = 'UpdateRefusedError'
    this.penalty = penalty
    this.code = code
  }
}

export const INSPECT_TIMEOUT_MS = 2_000
const WORKER_LIMITS = { maxOldGenerationSizeMb: 96, maxYoungGenerationSizeMb: 16, stackSizeMb: 4 }

interface Pending {
  worker: Worker, resolve: (value: InspectedUpdate) => void, reject: (error: Error) => void, timer: NodeJS.Timeout
}

export class UpdateInspector {
  private worker: Worker | undefined
  private readonly pending = new Map<number, Pending>()
  private nextId = 0
  /** updates waiting for the worker */
  private readonly queue: Array<{
    update: Uint8Array, resolve: (value: InspectedUpdate) => void, reject: (error: Error) => void
  }> = []
  private closed = false
  private readonly timeoutMs: number

  constructor (options: { timeoutMs?: number } = {}) {
    this.timeoutMs = options.timeoutMs ?? INSPECT_TIMEOUT_MS
  }

  /**
   * Opens an update in the worker. Updates wait their turn here and go to the worker one at a time, each with
   * its own deadline from when the worker takes it: many may be asked for at once (the sync service opens the
   * next messages while it applies one), and a slow one fails alone.
   */
  async inspect (update: Uint8Array): Promise<InspectedUpdate> {
    if (this.closed) throw new UpdateRefusedError('the node is stopping')
    return await new Promise<InspectedUpdate>((resolve, reject) => {
      this.queue.push({ update, resolve, reject })
      this.pump()
    })
  }

  private pump (): void {
    if (this.pending.size > 0 || this.closed) return
    const next = this.queue.shift()
    if (next === undefined) return
    const worker = this.ensureWorker()
    const id = this.nextId++
    const timer = setTimeout(() => {
      this.failAll(worker, new UpdateRefusedError(`opening the update took more than ${this.timeoutMs} ms`))
    }, this.timeoutMs)
    const settle = <T>(fn: (value: T) => void) => (value: T): void => {
      fn(value)
      this.pump()
    }
    this.pending.set(id, { worker, resolve: settle(next.resolve), reject: settle(next.reject), timer })
    worker.postMessage({ id, update: next.update })
  }

  async close (): Promise<void> {
    this.closed = true
    for (const waiting of this.queue.splice(0)) waiting.reject(new UpdateRefusedError('the node is stopping'))
    const worker = this.worker
    this.worker = undefined
    if (worker !== undefined) {
      this.failAll(worker, new UpdateRefusedError('the node is stopping'))
    }
  }

  private ensureWorker (): Worker {
    if (this.worker !== undefined) return this.worker
    const worker = new Worker(new URL('./inspect-worker.ts', import.meta.url), { resourceLimits: WORKER_LIMITS })
    worker.on('message', ({ id, result, error }: { id: number, result?: InspectedUpdate, error?: string }) => {
      const pending = this.pending.get(id)
      if (pending === undefined) return
      this.pending.delete(id)
      clearTimeout(pending.timer)
      if (error !== undefined || result === undefined) {
        pending.reject(new UpdateRefusedError(`the update does not decode: ${error ?? 'no result'}`))
      }
      else pending.resolve(result)
    })
    worker.on('error', error => {
      this.failAll(worker, new UpdateRefusedError(`opening the update failed: ${error.message}`))
    })
    worker.on('exit', () => {
      this.failAll(worker, new UpdateRefusedError('opening the update stopped the inspector (memory limit)'))
    })
    // After the listeners (adding one refs the worker's port again): an idle inspector keeps no process alive.
    worker.unref()
    this.worker = worker
    return worker
  }

  /** Everything waiting on `worker` fails with `error`; the worker is dropped (a new one starts on demand). */
  private failAll (worker: Worker, error: Error): void {
    if (this.worker === worker) this.worker = undefined
    for (const [id, pending] of this.pending) {
      if (pending.worker !== worker) continue
      clearTimeout(pending.timer)
      pending.reject(error)
      this.pending.delete(id)
    }
    void worker.terminate()
  }
}

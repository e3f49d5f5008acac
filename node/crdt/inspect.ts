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
  /**
   * Set when the item's one value is an authored worklist record whose Ed25519 signature by its author the
   * worker checked and found good: the check of the record on this thread need not verify it again.
   */
  signed?: true
}

export interface InspectedUpdate {
  items: InspectedItem[]
  deletes: Array<{ client: number; clock: number; length: number }>
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
  constructor(message: string, penalty = 1, code: UpdateRefusedError['code'] = 'RADMESH_NOT_ALLOWED') {
    super(message)
    this.name = 'UpdateRefusedError'
    this.penalty = penalty
    this.code = code
  }
}

export const INSPECT_TIMEOUT_MS = 2_000
const WORKER_LIMITS = { maxOldGenerationSizeMb: 96, maxYoungGenerationSizeMb: 16, stackSizeMb: 4 }
/**
 * Updates posted to the worker ahead of the one it works on: it goes on while this thread applies what came
 * back (one at a time, a reader taking a thousand documents waited a turn of both threads for each).
 */
const POSTED_AHEAD = 16
/**
 * More are posted once no more than this many are pending, all in one message: a message to the worker costs the
 * node's thread more than the bytes it carries (one per update was a tenth of a new reader's cold sync).
 */
const REFILL_BELOW = POSTED_AHEAD / 2

/**
 * The update's bytes in a buffer of their own, to be moved to the worker. Posting a view copies the whole buffer
 * under it: a sync message is a view into what the stream read (often 64 KiB), so a new reader taking a thousand
 * documents copied 64 MB to the worker (figures: docs/PERFORMANCE.md, Scale).
 */
const exactCopy = (update: Uint8Array): Uint8Array<ArrayBuffer> => new Uint8Array(update)

interface Waiting {
  update: Uint8Array
  resolve: (value: InspectedUpdate) => void
  reject: (error: Error) => void
}
interface Pending extends Waiting {
  worker: Worker
}

export class UpdateInspector {
  private worker: Worker | undefined
  /** updates posted to the worker, in the order it opens them (the first is the one it works on) */
  private readonly pending = new Map<number, Pending>()
  /** the deadline of the first pending update, counted from when the worker took it */
  private timer: NodeJS.Timeout | undefined
  private nextId = 0
  /** updates waiting to be posted */
  private readonly queue: Waiting[] = []
  private closed = false
  /** a pump is due after this turn (updates asked for in one turn go in one message) */
  private pumpDue = false
  private readonly timeoutMs: number

  constructor(options: { timeoutMs?: number } = {}) {
    this.timeoutMs = options.timeoutMs ?? INSPECT_TIMEOUT_MS
  }

  /**
   * Opens an update in the worker. Updates wait their turn here and go to the worker POSTED_AHEAD at a time; the
   * worker opens them in order, each with its own deadline from when the worker takes it (when the one before
   * came back): many may be asked for at once (the sync service opens the next messages while it applies one),
   * and a slow one fails alone, the others going to a new worker.
   */
  async inspect(update: Uint8Array): Promise<InspectedUpdate> {
    if (this.closed) throw new UpdateRefusedError('the node is stopping')
    return await new Promise<InspectedUpdate>((resolve, reject) => {
      this.queue.push({ update, resolve, reject })
      if (this.pumpDue) return
      this.pumpDue = true
      setImmediate(() => {
        this.pumpDue = false
        this.pump()
      })
    })
  }

  /** Starts the worker now if it is not running: updates are about to come (a step 1 went out). */
  warm(): void {
    if (!this.closed) this.ensureWorker()
  }

  /** Posts what waits, up to POSTED_AHEAD pending, in one message, once no more than REFILL_BELOW are pending. */
  private pump(): void {
    if (this.closed || this.queue.length === 0 || this.pending.size > REFILL_BELOW) {
      this.armDeadline()
      return
    }
    const worker = this.ensureWorker()
    const updates: Array<{ id: number; update: Uint8Array }> = []
    const transfer: ArrayBuffer[] = []
    for (const next of this.queue.splice(0, POSTED_AHEAD - this.pending.size)) {
      const id = this.nextId++
      this.pending.set(id, { ...next, worker })
      const bytes = exactCopy(next.update)
      updates.push({ id, update: bytes })
      transfer.push(bytes.buffer)
    }
    worker.postMessage(updates, transfer)
    this.armDeadline()
  }

  /** A deadline for the update the worker works on now (the first pending), if it has none yet. */
  private armDeadline(): void {
    if (this.timer !== undefined) return
    const first = this.pending.values().next().value
    if (first === undefined) return
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.failFirst(first.worker, new UpdateRefusedError(`opening the update took more than ${this.timeoutMs} ms`))
    }, this.timeoutMs)
  }

  /** The first pending update came back: the next one's deadline starts now. */
  private settled(id: number): Pending | undefined {
    const pending = this.pending.get(id)
    if (pending === undefined) return undefined
    this.pending.delete(id)
    clearTimeout(this.timer)
    this.timer = undefined
    return pending
  }

  async close(): Promise<void> {
    this.closed = true
    for (const waiting of this.queue.splice(0)) waiting.reject(new UpdateRefusedError('the node is stopping'))
    clearTimeout(this.timer)
    this.timer = undefined
    const worker = this.worker
    this.worker = undefined
    if (worker === undefined) return
    for (const [id, pending] of this.pending) {
      this.pending.delete(id)
      pending.reject(new UpdateRefusedError('the node is stopping'))
    }
    void worker.terminate()
  }

  private ensureWorker(): Worker {
    if (this.worker !== undefined) return this.worker
    const worker = new Worker(new URL('./inspect-worker.ts', import.meta.url), { resourceLimits: WORKER_LIMITS })
    worker.on('message', ({ id, result, error }: { id: number; result?: InspectedUpdate; error?: string }) => {
      const pending = this.settled(id)
      if (pending === undefined) return
      if (error !== undefined || result === undefined) {
        pending.reject(new UpdateRefusedError(`the update does not decode: ${error ?? 'no result'}`))
      } else pending.resolve(result)
      this.pump()
    })
    worker.on('error', error => {
      this.failFirst(worker, new UpdateRefusedError(`opening the update failed: ${error.message}`))
    })
    worker.on('exit', () => {
      this.failFirst(worker, new UpdateRefusedError('opening the update stopped the inspector (memory limit)'))
    })
    // After the listeners (adding one refs the worker's port again): an idle inspector keeps no process alive.
    worker.unref()
    this.worker = worker
    return worker
  }

  /**
   * The update `worker` works on (its first pending) fails with `error`; the worker is dropped, and the updates
   * posted after it go, first in line, to a new one.
   */
  private failFirst(worker: Worker, error: Error): void {
    if (this.worker === worker) this.worker = undefined
    void worker.terminate()
    const posted = [...this.pending].filter(([, pending]) => pending.worker === worker)
    if (posted.length === 0) return
    clearTimeout(this.timer)
    this.timer = undefined
    for (const [id] of posted) this.pending.delete(id)
    const [first, ...after] = posted.map(([, pending]) => pending)
    this.queue.unshift(...after.map(({ update, resolve, reject }) => ({ update, resolve, reject })))
    first?.reject(error)
    this.pump()
  }
}

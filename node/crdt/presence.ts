/**
 * Who has a report open, and where their cursor is: y-protocols awareness, one per report, never stored.
 * States come from this node's viewers (Yjs clients bound to this node's member) and from peers (clients
 * bound to that peer); a state for a client bound to someone else, or larger than a name and a cursor,
 * is refused. Changes and renewals go to this node's viewers and to the peers the report is shared with
 * (sync.ts, message type 3). A state not renewed for 30 s is dropped (y-protocols' timeout).
 */
import * as decoding from 'lib0/decoding'
import type { Logger } from 'pino'
import { applyAwarenessUpdate, Awareness, encodeAwarenessUpdate } from 'y-protocols/awareness'
import * as Y from 'yjs'
import { type BindingRecord, EDITORS_MAP } from '../../protocol/collab/records.ts'
import { MAX_AWARENESS_BYTES } from '../../protocol/collab/sync.ts'
import type { Documents } from './documents.ts'
import { UpdateRefusedError } from './inspect.ts'

/** A name, a colour and a cursor (two Yjs relative positions) fit easily. */
const MAX_STATE_CHARS = 2048

export type PresenceOrigin = { kind: 'viewer' } | { kind: 'peer'; peerId: string }
export type PresenceListener = (docId: string, update: Uint8Array, origin: PresenceOrigin | 'timeout') => void

/** The clients of an awareness update and their states (null: gone); throws on anything else. */
export function awarenessEntries(update: Uint8Array): Array<{ clientId: number; state: unknown }> {
  if (update.byteLength > MAX_AWARENESS_BYTES) {
    throw new UpdateRefusedError(
      `a presence update of ${update.byteLength} bytes; the limit is ` + `${MAX_AWARENESS_BYTES}`,
      1
    )
  }
  const entries: Array<{ clientId: number; state: unknown }> = []
  try {
    const decoder = decoding.createDecoder(update)
    const count = decoding.readVarUint(decoder)
    for (let i = 0; i < count; i++) {
      const clientId = decoding.readVarUint(decoder)
      decoding.readVarUint(decoder)
      const text = decoding.readVarString(decoder)
      if (text.length > MAX_STATE_CHARS) {
        throw new UpdateRefusedError(`a presence state of ${text.length} characters`, 1)
      }
      entries.push({ clientId, state: JSON.parse(text) as unknown })
    }
    if (decoding.hasContent(decoder)) throw new Error('bytes after the last state')
  } catch (error) {
    if (error instanceof UpdateRefusedError) throw error
    throw new UpdateRefusedError(`a presence update that does not decode: ${(error as Error).message}`, 2)
  }
  return entries
}

export class Presence {
  private readonly documents: Documents
  private readonly me: string
  private readonly log: Logger
  private readonly awareness = new Map<string, Awareness>()
  private readonly listeners = new Set<PresenceListener>()

  constructor(options: { documents: Documents; me: string; log: Logger }) {
    this.documents = options.documents
    this.me = options.me
    this.log = options.log
  }

  private of(docId: string): Awareness {
    let awareness = this.awareness.get(docId)
    if (awareness === undefined) {
      // Its own document: the node has no cursor, so its own state is cleared at once.
      const created = new Awareness(new Y.Doc())
      created.setLocalState(null)
      ;(created as unknown as { _checkInterval: NodeJS.Timeout })._checkInterval.unref()
      type Change = { added: number[]; updated: number[]; removed: number[] }
      created.on('update', ({ added, updated, removed }: Change, origin: unknown) => {
        const update = encodeAwarenessUpdate(created, [...added, ...updated, ...removed])
        for (const listener of this.listeners) listener(docId, update, origin as PresenceOrigin | 'timeout')
      })
      this.awareness.set(docId, created)
      awareness = created
    }
    return awareness
  }

  /** Applies presence from this node's viewer or from a peer; throws UpdateRefusedError with the reason. */
  async apply(docId: string, update: Uint8Array, origin: PresenceOrigin): Promise<void> {
    const entries = awarenessEntries(update)
    const editors = (await this.documents.open(docId)).getMap<BindingRecord>(EDITORS_MAP)
    const expected = origin.kind === 'viewer' ? this.me : origin.peerId
    for (const { clientId, state } of entries) {
      const binding = editors.get(String(clientId))
      if (binding?.by !== expected) {
        throw new UpdateRefusedError(
          `presence of Yjs client ${clientId}, which is not bound to ${expected}`,
          origin.kind === 'peer' && binding !== undefined ? 5 : 0
        )
      }
      if (state !== null && (typeof state !== 'object' || Array.isArray(state))) {
        throw new UpdateRefusedError('a presence state that is not an object', 2)
      }
    }
    applyAwarenessUpdate(this.of(docId), update, origin)
  }

  /** Every state known for the document, for a viewer that just opened it (undefined when none). */
  snapshot(docId: string): Uint8Array | undefined {
    const awareness = this.awareness.get(docId)
    if (awareness === undefined || awareness.states.size === 0) return undefined
    return encodeAwarenessUpdate(awareness, [...awareness.states.keys()])
  }

  onUpdate(listener: PresenceListener): () => void {
    this.listeners.add(listener)
    return () => {
      this.listeners.delete(listener)
    }
  }

  stop(): void {
    for (const awareness of this.awareness.values()) awareness.destroy()
    this.awareness.clear()
    this.log.debug('presence stopped')
  }
}

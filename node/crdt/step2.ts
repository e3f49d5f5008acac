/** A sync step 2 (sync.ts) that fits the protocol's message limit. */
import type { Logger } from 'pino'
import * as Y from 'yjs'
import { MAX_STEP2_BYTES } from '../../protocol/collab/sync.ts'

/**
 * The difference a member with state vector `remote` lacks, in messages of at most MAX_STEP2_BYTES: whole
 * when it fits, else one update per author (Yjs client) holding that client's part and the delete set (each
 * applies on its own; Yjs waits for what one depends on). Nothing when the member lacks nothing.
 */
export function step2Parts(doc: Y.Doc, remote: Uint8Array): Uint8Array[] {
  const whole = Y.encodeStateAsUpdate(doc, remote)
  if (whole.byteLength <= 2) return []
  if (whole.byteLength <= MAX_STEP2_BYTES) return [whole]
  const theirs = Y.decodeStateVector(remote)
  const mine = Y.decodeStateVector(Y.encodeStateVector(doc))
  const parts: Uint8Array[] = []
  for (const [client, clock] of mine) {
    if (clock <= (theirs.get(client) ?? 0)) continue
    // Every other client at its end: what is left is this client's part.
    const others = new Map(mine)
    others.set(client, theirs.get(client) ?? 0)
    parts.push(Y.encodeStateAsUpdate(doc, Y.encodeStateVector(others)))
  }
  return parts
}

/** The parts of `step2Parts` that fit a message; a larger one (one author's part) is logged, not sent. */
export function step2Sendable(doc: Y.Doc, docId: string, remote: Uint8Array, log: Logger): Uint8Array[] {
  return step2Parts(doc, remote).filter(part => {
    if (part.byteLength <= MAX_STEP2_BYTES) return true
    log.error(
      { event: 'sync-document-too-large', code: 'sync-document-too-large', doc: docId, bytes: part.byteLength },
      `one author's part of ${docId} is over the ${MAX_STEP2_BYTES} bytes a sync message holds; it is not sent`
    )
    return false
  })
}

/**
 * The worker side of `UpdateInspector`: decodes one untrusted Yjs update and applies it to an empty
 * document, so that a crafted update that throws, hangs or eats memory does it here, under a time and
 * memory limit, and never on the node's event loop. Answers what the update contains.
 */
import { parentPort } from 'node:worker_threads'
import * as Y from 'yjs'
import { decodeWorklistRecord, worklistSigningBytes } from '../../protocol/collab/records.ts'
import { signedByEd25519PeerId } from '../membership/peer-key.ts'
import type { InspectedItem, InspectedUpdate } from './inspect.ts'

function contentKind(content: Y.Item['content']): InspectedItem['kind'] {
  if (content instanceof Y.ContentAny) return 'any'
  if (content instanceof Y.ContentString) return 'string'
  if (content instanceof Y.ContentDeleted) return 'deleted'
  if (content instanceof Y.ContentType) return 'type'
  if (content instanceof Y.ContentFormat) return 'format'
  if (content instanceof Y.ContentEmbed) return 'embed'
  if (content instanceof Y.ContentJSON) return 'json'
  if (content instanceof Y.ContentBinary) return 'binary'
  return 'doc'
}

/**
 * Whether `value` is an authored worklist record signed by its author. Checked here, beside the node's thread, so
 * a new reader taking a site's thousand cases verifies their signatures on two cores (the node's thread still
 * checks everything else of each record: its shape, its key, its author's role).
 */
function signedRecord(value: unknown): boolean {
  if (typeof value !== 'object' || value === null || !('signature' in value)) return false
  try {
    const record = decodeWorklistRecord(value)
    return record.kind !== 'member' && signedByEd25519PeerId(record.by, worklistSigningBytes(record), record.signature)
  } catch {
    return false
  }
}

function inspect(update: Uint8Array): InspectedUpdate {
  const { structs, ds } = Y.decodeUpdate(update)
  Y.applyUpdate(new Y.Doc(), update)
  const items: InspectedItem[] = []
  let skipped = 0
  for (const struct of structs) {
    if (!(struct instanceof Y.Item)) {
      skipped++
      continue
    }
    const kind = contentKind(struct.content)
    items.push({
      client: struct.id.client,
      clock: struct.id.clock,
      length: struct.length,
      hasOrigin: struct.origin !== null || struct.rightOrigin !== null,
      root: typeof struct.parent === 'string' ? struct.parent : null,
      parentSub: struct.parentSub,
      kind,
      ...(kind === 'any' ? { values: (struct.content as Y.ContentAny).arr } : {})
    })
    const values = kind === 'any' ? (struct.content as Y.ContentAny).arr : []
    if (values.length === 1 && signedRecord(values[0])) (items.at(-1) as InspectedItem).signed = true
  }
  const deletes: InspectedUpdate['deletes'] = []
  for (const [client, ranges] of ds.clients) {
    for (const range of ranges) deletes.push({ client, clock: range.clock, length: range.len })
  }
  return { items, deletes, otherStructs: skipped }
}

// Updates come several to a message; each one's answer goes back as soon as it is opened (its deadline is its own).
parentPort?.on('message', (updates: Array<{ id: number; update: Uint8Array }>) => {
  for (const { id, update } of updates) {
    try {
      parentPort?.postMessage({ id, result: inspect(update) })
    } catch (error) {
      parentPort?.postMessage({ id, error: (error as Error).message ?? String(error) })
    }
  }
})

/**
 * The worker side of `UpdateInspector`: decodes one untrusted Yjs update and applies it to an empty
 * document, so that a crafted update that throws, hangs or eats memory does it here, under a time and
 * memory limit, and never on the node's event loop. Answers what the update contains.
 */
import { parentPort } from 'node:worker_threads'
import * as Y from 'yjs'
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
  }
  const deletes: InspectedUpdate['deletes'] = []
  for (const [client, ranges] of ds.clients) {
    for (const range of ranges) deletes.push({ client, clock: range.clock, length: range.len })
  }
  return { items, deletes, otherStructs: skipped }
}

parentPort?.on('message', ({ id, update }: { id: number; update: Uint8Array }) => {
  try {
    parentPort?.postMessage({ id, result: inspect(update) })
  } catch (error) {
    parentPort?.postMessage({ id, error: (error as Error).message ?? String(error) })
  }
})

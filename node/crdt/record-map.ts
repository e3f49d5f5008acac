/**
 * The rule every grow-only map of signed records keeps (the `records` map of the members document and of each
 * case document): an update from a peer may only add entries, each under its own key, never overwrite or
 * delete one.
 *
 * One thing looks like an overwrite and is not: the same record set under its key by two nodes that had not
 * seen each other's (a reader whose disk was wiped publishes its member certificate again; two nodes carry
 * the same record over from an older worklist). Yjs keeps one of the two entries and deletes the other, and
 * the node that did passes that deletion on. So a deletion is taken when every entry it removes is one this
 * node does not have, or one whose key keeps an identical record; anything else removes a record, and is refused.
 */
import * as Y from 'yjs'
import { canonicalJson, type Json } from '../../protocol/json.ts'
import type { InspectedUpdate } from './inspect.ts'
import { UpdateRefusedError } from './inspect.ts'

/** A deletion longer than this, in one update of a record map, is not an honest one. */
const MAX_DELETED_PER_UPDATE = 10_000

export interface IncomingEntry {
  key: string
  value: unknown
  /** the inspector's worker found the value a worklist record signed by its author (InspectedItem.signed) */
  signed: boolean
}

const same = (a: unknown, b: unknown): boolean => {
  try {
    return canonicalJson(a as Json) === canonicalJson(b as Json)
  } catch {
    return false
  }
}

/**
 * The entries an update adds to `map` (the root map `root` of `doc`), or UpdateRefusedError: items outside the
 * map or that are not one record each, an entry set over a different record, a deletion of a record, an
 * update that builds on structs this node lacks (penalty 0: it may be fine once they arrive).
 */
export function newEntries(doc: Y.Doc, root: string, update: InspectedUpdate, what: string): IncomingEntry[] {
  const map = doc.getMap(root)
  const firstClock = new Map<number, number>()
  for (const item of update.items) {
    firstClock.set(item.client, Math.min(firstClock.get(item.client) ?? Infinity, item.clock))
  }
  for (const [client, clock] of firstClock) {
    if (clock > Y.getState(doc.store, client)) {
      throw new UpdateRefusedError(`the update builds on ${what} updates this node does not have yet`, 0)
    }
  }
  const incoming: IncomingEntry[] = []
  /** what each key holds once the update is applied: the incoming value when it brings one */
  const arriving = new Map<string, unknown>()
  for (const item of update.items) {
    if (
      item.kind !== 'any' ||
      item.hasOrigin ||
      item.root !== root ||
      item.parentSub === null ||
      item.values?.length !== 1
    ) {
      throw new UpdateRefusedError(
        `the update changes the ${what} other than by adding a record (a ${item.kind} ` +
          `item${item.root === null ? '' : ` in ${item.root}`})`,
        5
      )
    }
    if (Y.getState(doc.store, item.client) > item.clock) continue // an entry this node has already
    const key = item.parentSub
    const value = item.values[0]
    const existing = map.get(key)
    if (existing !== undefined && !same(existing, value)) {
      throw new UpdateRefusedError(`the update overwrites ${what} record ${key}`, 5)
    }
    const before = arriving.get(key)
    if (before !== undefined && !same(before, value)) {
      throw new UpdateRefusedError(`the update sets ${what} record ${key} twice, to different values`, 5)
    }
    arriving.set(key, value)
    if (existing === undefined) incoming.push({ key, value, signed: item.signed === true })
  }
  let deleted = 0
  for (const range of update.deletes) {
    deleted += range.length
    if (deleted > MAX_DELETED_PER_UPDATE) {
      throw new UpdateRefusedError(`the update deletes more than ${MAX_DELETED_PER_UPDATE} ${what} entries`, 5)
    }
    for (let clock = range.clock; clock < range.clock + range.length; clock++) {
      // Not here: a deletion of something this node never had changes nothing.
      if (clock >= Y.getState(doc.store, range.client)) continue
      const item = Y.getItem(doc.store, Y.createID(range.client, clock))
      if (!(item instanceof Y.Item) || item.deleted) continue
      const key = item.parentSub
      const kept = key === null ? undefined : (arriving.get(key) ?? liveValueBesides(map, key, item))
      if (key === null || kept === undefined || !same(kept, (item.content as Y.ContentAny).getContent()[0])) {
        throw new UpdateRefusedError(
          `the update deletes ${what} record ${key ?? '(not a record)'}; records are ` + `never deleted`,
          5
        )
      }
    }
  }
  // GC and skip structs stand for content already deleted or not sent: only a deletion above can remove anything.
  return incoming
}

/** The value `key` holds through another entry than `item` (one set concurrently), if any. */
function liveValueBesides(map: Y.Map<unknown>, key: string, item: Y.Item): unknown {
  // Y.Map keeps the winning entry in `_map`; the others for that key are linked through `left`.
  const entries = (map as unknown as { _map: Map<string, Y.Item> })._map
  for (let entry = entries.get(key) ?? null; entry !== null; entry = entry.left) {
    if (entry !== item && !entry.deleted && entry.content instanceof Y.ContentAny) return entry.content.getContent()[0]
  }
  return undefined
}

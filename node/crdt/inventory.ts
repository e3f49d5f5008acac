/**
 * The bookkeeping of sync's digests and inventories (sync.ts): the digest of an inventory, an inventory cut
 * into pages, a member's pages gathered until its last one, and answers limited to one per interval.
 */
import { createHash } from 'node:crypto'
import { type Inventory, type InventoryEntry, MAX_INVENTORY_ENTRIES } from '../../protocol/collab/sync.ts'
import { MalformedMessageError } from '../../protocol/errors.ts'

/** Inventory entries taken from one member in one exchange (its pages are gathered until the last). */
const MAX_INVENTORY_TOTAL = 64 * MAX_INVENTORY_ENTRIES
/** Bookkeeping per (member, document) is pruned past this many entries. */
const MAX_TRACKED = 4_096

/** SHA-256 over each document id and its state hash, in the inventory's order. */
export function digestOf(entries: InventoryEntry[]): Uint8Array {
  const sha = createHash('sha256')
  for (const { docId, stateHash } of entries) sha.update(docId).update('\n').update(stateHash)
  return sha.digest()
}

/** An inventory as pages of at most MAX_INVENTORY_ENTRIES entries (one empty page when it is empty). */
export function inventoryPages(entries: InventoryEntry[], answer: boolean): Inventory[] {
  const pages: Inventory[] = []
  for (let at = 0; at === 0 || at < entries.length; at += MAX_INVENTORY_ENTRIES) {
    pages.push({
      answer,
      last: at + MAX_INVENTORY_ENTRIES >= entries.length,
      entries: entries.slice(at, at + MAX_INVENTORY_ENTRIES)
    })
  }
  return pages
}

/** Each member's inventory pages, gathered until its last one. */
export class InventoryPages {
  private readonly gathering = new Map<string, { answer: boolean; entries: InventoryEntry[] }>()

  /** The member's whole inventory once `page` is its last; throws past MAX_INVENTORY_TOTAL entries. */
  gather(peer: string, page: Inventory): { answer: boolean; entries: InventoryEntry[] } | undefined {
    const gathered = this.gathering.get(peer) ?? { answer: page.answer, entries: [] }
    gathered.entries.push(...page.entries)
    if (gathered.entries.length > MAX_INVENTORY_TOTAL) {
      this.gathering.delete(peer)
      throw new MalformedMessageError(`an inventory of more than ${MAX_INVENTORY_TOTAL} documents`)
    }
    if (!page.last) {
      this.gathering.set(peer, gathered)
      return undefined
    }
    this.gathering.delete(peer)
    return gathered
  }
}

/** At most one answer per key (a member, or a member and a document) per interval. */
export class AnswerLimit {
  private readonly intervalMs: number
  /** when each key was last answered */
  private readonly answered = new Map<string, number>()
  /** what runs once a key may be answered again (later), one per key */
  private readonly pending = new Map<string, NodeJS.Timeout>()

  constructor(intervalMs: number) {
    this.intervalMs = intervalMs
  }

  /** Whether `key` may be answered now; if it may, it counts as answered now. */
  take(key: string): boolean {
    const now = Date.now()
    if (now - (this.answered.get(key) ?? -Infinity) < this.intervalMs) return false
    if (this.answered.size >= MAX_TRACKED) {
      for (const [known, at] of this.answered) if (now - at >= this.intervalMs) this.answered.delete(known)
    }
    this.answered.set(key, now)
    return true
  }

  /** Runs `fn` once, when `key` may be answered again; a key already waiting is not scheduled twice. */
  later(key: string, fn: () => void): void {
    if (this.pending.has(key)) return
    const waitMs = Math.max(0, (this.answered.get(key) ?? -Infinity) + this.intervalMs - Date.now())
    const timer = setTimeout(() => {
      this.pending.delete(key)
      fn()
    }, waitMs)
    timer.unref()
    this.pending.set(key, timer)
  }

  /** Cancels what `later` scheduled. */
  clear(): void {
    for (const timer of this.pending.values()) clearTimeout(timer)
    this.pending.clear()
  }
}

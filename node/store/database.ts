/**
 * The node's LevelDB. One database per HOME; each capability takes its own sublevel so keys never collide.
 * Values are JSON unless a capability says otherwise.
 */
import type { AbstractSublevel } from 'abstract-level'
import { Level } from 'level'
import { HomeError } from '../errors.ts'

export type Database = Level<string, unknown>

/**
 * Table files LevelDB keeps open at once. LevelDB maps each open table file into memory (64-bit), and the pages
 * a read touches stay in the node's RSS until the table is closed; at its default of 1000 a site with a year of
 * cases keeps every table of its history open and counts what loading its live cases touched. Closed beyond
 * this many (least recently used), a table is opened again when read: its index block read once more. 74 is
 * the least LevelDB accepts (64 tables, 10 other files). Figures: docs/PERFORMANCE.md, Scale.
 */
export const MAX_OPEN_FILES = 74

/** classic-level's fsync flag for a batch: abstract-level forwards it (from a sublevel too) but does not type it. */
export const SYNCED_WRITE = { sync: true } as unknown as Record<string, never>
/** A sublevel of the node's database whose values are `V`. */
export type SublevelOf<V> = AbstractSublevel<Database, string | Uint8Array, string, V>
/** A sublevel of raw bytes (`valueEncoding: 'view'`): sealed values, or values a capability encodes itself. */
export type BinarySublevel = SublevelOf<Uint8Array>

export async function openDatabase(path: string): Promise<Database> {
  const db = new Level<string, unknown>(path, { valueEncoding: 'json', maxOpenFiles: MAX_OPEN_FILES })
  try {
    await db.open()
  } catch (error) {
    const cause = (error as { cause?: { message?: string } }).cause?.message ?? (error as Error).message
    const hint = /lock/i.test(cause)
      ? 'another radmesh node is running on this HOME; stop it first'
      : 'the database may be damaged; restore HOME from a backup'
    const message = `cannot open the node database at ${path}: ${cause}; ${hint}`
    throw new HomeError('RADMESH_HOME_CORRUPT', message, { cause: error })
  }
  return db
}

/**
 * The content store: instance bytes cut into fixed-size chunks, each addressed by the SHA-256 of its
 * plaintext, sealed at rest, one file per chunk under HOME/chunks/ab/<keyed name>. A chunk already
 * present is not written again (the same bytes stored twice cost nothing). The exchange serves and
 * verifies chunks by the same ids.
 */
import { createHash } from 'node:crypto'
import { constants, promises as fs } from 'node:fs'
import { join } from 'node:path'
import { syncDirectory } from '../files.ts'
import type { StorageKey } from './sealing.ts'

/** 1 MiB: big enough that per-chunk overhead vanishes, small enough to pull with bounded memory. */
export const CHUNK_SIZE = 1024 * 1024

export const sha256Hex = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')

export class ChunkStore {
  private readonly root: string
  private readonly key: StorageKey

  constructor (root: string, key: StorageKey) {
    this.root = root
    this.key = key
  }

  async open (): Promise<void> {
    await fs.mkdir(this.root, { recursive: true, mode: 0o700 })
  }

  private pathOf (id: string): { dir: string, file: string } {
    const name = this.key.name(id)
    const dir = join(this.root, name.slice(0, 2))
    return { dir, file: join(dir, name) }
  }

  /**
   * Writes the chunks of `bytes` durably (each file fsynced, then the directories that gained entries)
   * and returns their ids in order. Only after this resolves may the index point at them.
   */
  async putAll (bytes: Uint8Array): Promise<string[]> {
    const ids: string[] = []
    const touched = new Set<string>()
    for (let offset = 0; offset < bytes.byteLength || offset === 0; offset += CHUNK_SIZE) {
      const chunk = bytes.subarray(offset, Math.min(bytes.byteLength, offset + CHUNK_SIZE))
      const id = sha256Hex(chunk)
      ids.push(id)
      const { dir, file } = this.pathOf(id)
      if (await this.exists(file)) continue
      await fs.mkdir(dir, { recursive: true, mode: 0o700 })
      const temporary = `${file}.${process.pid}.tmp`
      const handle = await fs.open(temporary, constants.O_CREAT | constants.O_TRUNC | constants.O_WRONLY, 0o600)
      try {
        await handle.writeFile(this.key.seal(chunk, `chunk:${id}`))
        await handle.sync()
      } finally {
        await handle.close()
      }
      await fs.rename(temporary, file)
      touched.add(dir)
      if (bytes.byteLength === 0) break
    }
    for (const dir of touched) await syncDirectory(dir)
    return ids
  }

  private async exists (file: string): Promise<boolean> {
    try {
      await fs.access(file)
      return true
    } catch {
      return false
    }
  }

  async has (id: string): Promise<boolean> {
    return await this.exists(this.pathOf(id).file)
  }

  /** The plaintext of a chunk, verified against its id (a damaged file is an error, never wrong bytes). */
  async get (id: string): Promise<Buffer> {
    const sealed = await fs.readFile(this.pathOf(id).file)
    const plaintext = this.key.open(sealed, `chunk:${id}`)
    if (sha256Hex(plaintext) !== id) throw new Error(`chunk ${id} does not match its hash`)
    return plaintext
  }

  async read (ids: string[]): Promise<Buffer> {
    return Buffer.concat(await Promise.all(ids.map(async id => await this.get(id))))
  }
}

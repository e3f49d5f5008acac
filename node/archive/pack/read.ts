/**
 * Reading packs: the handles kept open to read sealed chunks where the index says they lie, and the checks
 * made at start (which files are packs, which are framed, where the entries of the last one end).
 */
import { constants, promises as fs } from 'node:fs'
import { join } from 'node:path'
import { type ChunkLocation, ENTRY_MAGIC, packName, packNumber } from './format.ts'

/** The packs in `root`, in order. */
export async function listPacks(root: string): Promise<number[]> {
  return (await fs.readdir(root))
    .map(packNumber)
    .filter(n => n !== undefined)
    .sort((a, b) => a - b)
}

/** Whether a pack starts with an entry frame (packs written before the framing do not, and are never scanned). */
export async function isFramed(root: string, pack: number): Promise<boolean> {
  const handle = await fs.open(join(root, packName(pack)), constants.O_RDONLY)
  try {
    const magic = Buffer.alloc(ENTRY_MAGIC.byteLength)
    const { bytesRead } = await handle.read(magic, 0, magic.byteLength, 0)
    return bytesRead === magic.byteLength && magic.equals(ENTRY_MAGIC)
  } finally {
    await handle.close()
  }
}

const ZEROS = Buffer.alloc(1024 * 1024)

/** Whether a pack holds nothing but zeros from `offset` to its end. */
export async function zeroFrom(root: string, pack: number, offset: number): Promise<boolean> {
  const handle = await fs.open(join(root, packName(pack)), constants.O_RDONLY)
  try {
    const block = Buffer.alloc(ZEROS.byteLength)
    for (let at = offset; ; ) {
      const { bytesRead } = await handle.read(block, 0, block.byteLength, at)
      if (bytesRead === 0) return true
      // memcmp, not a callback per byte: a site's 256 MiB of zero-filled space is read at every start.
      if (!block.subarray(0, bytesRead).equals(ZEROS.subarray(0, bytesRead))) return false
      at += bytesRead
    }
  } finally {
    await handle.close()
  }
}

/** Read handles of the packs, opened once each. */
export class PackReaders {
  private readonly root: string
  private readonly readers = new Map<number, Promise<fs.FileHandle>>()

  constructor(root: string) {
    this.root = root
  }

  async reader(pack: number): Promise<fs.FileHandle> {
    let reader = this.readers.get(pack)
    if (reader === undefined) {
      reader = fs.open(join(this.root, packName(pack)), constants.O_RDONLY)
      reader.catch(() => {
        this.readers.delete(pack)
      })
      this.readers.set(pack, reader)
    }
    return await reader
  }

  /** The sealed bytes at `location`, or undefined when the pack is shorter than that. */
  async read(location: ChunkLocation, handle?: fs.FileHandle): Promise<Buffer | undefined> {
    const sealed = Buffer.allocUnsafe(location.length)
    const source = handle ?? (await this.reader(location.pack))
    const { bytesRead } = await source.read(sealed, 0, location.length, location.offset)
    return bytesRead === location.length ? sealed : undefined
  }

  async close(): Promise<void> {
    for (const reader of this.readers.values()) await (await reader.catch(() => undefined))?.close()
    this.readers.clear()
  }
}

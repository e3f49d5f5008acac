/**
 * DICOM test material: small edits of real files, where a data set starts, every file under a folder.
 * The pydicom corpus itself is in scripts/lib/pydicom-corpus.ts (the fuzzers seed from it too).
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'

/** Replaces the first occurrence of `from` by `to` (same length), e.g. to plant a canary patient name. */
export function replaceSameLength(bytes: Uint8Array, from: string, to: string): Buffer {
  if (from.length !== to.length) throw new Error('replacement must keep the length')
  const buffer = Buffer.from(bytes)
  const at = buffer.indexOf(Buffer.from(from, 'latin1'))
  if (at < 0) throw new Error(`"${from}" not found`)
  buffer.write(to, at, 'latin1')
  return buffer
}

/** Where the data set starts in a Part 10 file: after the preamble, DICM and the File Meta Information group. */
export function datasetStart(file: Uint8Array): number {
  const view = Buffer.from(file.buffer, file.byteOffset, file.byteLength)
  if (view.toString('latin1', 128, 132) !== 'DICM') throw new Error('not Part 10')
  // (0002,0000) UL group length: tag(4) VR(2) len(2) value(4)
  return 132 + 12 + view.readUInt32LE(140)
}

/** Every file under `dir`, recursively. */
export async function* filesUnder(dir: string): AsyncGenerator<string> {
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) yield* filesUnder(path)
    else if (entry.isFile()) yield path
  }
}

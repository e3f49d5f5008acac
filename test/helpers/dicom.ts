/**
 * DICOM test material: the pydicom corpus from Debian, and small edits of real files.
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'

export const PYDICOM_CORPUS = '/usr/lib/python3/dist-packages/pydicom/data/test_files'

export async function corpusFiles (): Promise<string[]> {
  const names = await fs.readdir(PYDICOM_CORPUS).catch(() => {
    throw new Error(`the pydicom test corpus is missing at ${PYDICOM_CORPUS}: install Debian's python3-pydicom (npm test does)`)
  })
  return names.filter(name => name.endsWith('.dcm')).sort().map(name => join(PYDICOM_CORPUS, name))
}

/** Replaces the first occurrence of `from` by `to` (same length), e.g. to plant a canary patient name. */
export function replaceSameLength (bytes: Uint8Array, from: string, to: string): Buffer {
  if (from.length !== to.length) throw new Error('replacement must keep the length')
  const buffer = Buffer.from(bytes)
  const at = buffer.indexOf(Buffer.from(from, 'latin1'))
  if (at < 0) throw new Error(`"${from}" not found`)
  buffer.write(to, at, 'latin1')
  return buffer
}

/** Every file under `dir`, recursively. */
export async function * filesUnder (dir: string): AsyncGenerator<string> {
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) yield * filesUnder(path)
    else if (entry.isFile()) yield path
  }
}

/**
 * Small file helpers with the durability and permissions a medical system needs:
 * writes go to a temporary file, are fsynced, then renamed over the target, so a crash leaves either the
 * old file or the new one, never half of one; secrets are created 0600 from the first byte.
 */
import { randomBytes } from 'node:crypto'
import { constants, promises as fs } from 'node:fs'
import { dirname, join } from 'node:path'
import { HomeError } from './errors.ts'

export const SECRET_FILE_MODE = 0o600
export const PUBLIC_FILE_MODE = 0o644

export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = PUBLIC_FILE_MODE): Promise<void> {
  const temporary = join(dirname(path), `.${randomBytes(6).toString('hex')}.tmp`)
  const handle = await fs.open(temporary, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, mode)
  try {
    await handle.writeFile(data)
    await handle.sync()
  } finally {
    await handle.close()
  }
  await fs.rename(temporary, path)
  await syncDirectory(dirname(path))
}

/** Makes a rename durable: without this a power cut can forget the new directory entry. */
export async function syncDirectory(path: string): Promise<void> {
  const handle = await fs.open(path, constants.O_RDONLY)
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    await fs.access(path)
    return true
  } catch {
    return false
  }
}

/**
 * Reads and parses a JSON file, turning "missing" and "unreadable" into errors that name the file.
 * `decode` validates the shape and throws on anything else.
 */
export async function readJsonFile<T>(
  path: string,
  what: string,
  decode: (value: unknown) => T,
  missing: () => Error
): Promise<T> {
  let text: string
  try {
    text = await fs.readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw missing()
    throw new HomeError('RADMESH_HOME_CORRUPT', `cannot read ${what} at ${path}: ${(error as Error).message}`, {
      cause: error
    })
  }
  try {
    return decode(JSON.parse(text))
  } catch (error) {
    throw new HomeError(
      'RADMESH_HOME_CORRUPT',
      `${what} at ${path} is damaged (${(error as Error).message}); ` +
        'restore it from a backup or run the command that makes it again',
      { cause: error }
    )
  }
}

export const toJsonText = (value: unknown): string => `${JSON.stringify(value, null, 2)}\n`

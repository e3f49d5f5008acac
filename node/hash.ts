/** Content hashes, as every capability names bytes: SHA-256, lower-case hex. */
import { createHash } from 'node:crypto'

export const sha256Hex = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')

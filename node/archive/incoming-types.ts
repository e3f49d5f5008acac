/**
 * What an incoming object (incoming.ts) gives back once sealed and hashed, the options it is opened with,
 * and the error of an object over its limit.
 */
import type { InstanceParser } from '../dicom/part10.ts'
import type { SealedChunk, SealedPieces, StagedChunk, StagedWrite } from './pack/index.ts'

/** An object held in memory, sealed and hashed: `finish()`. */
export interface ReceivedObject {
  bytes: Buffer
  sha256: string
  chunks: SealedChunk[]
}

/** The object sealed, its last chunk's id (and so its own hash) still to take: see `identify`. */
export interface SealedObject {
  /** its bytes, when held in memory (undefined once it spilled) */
  bytes: Buffer | undefined
  length: number
  chunks: Array<SealedPieces | StagedChunk>
}

/** The object with its hash and every chunk id: its chunks in memory, or spilled (staged in the pack log). */
export interface IdentifiedObject {
  length: number
  sha256: string
  chunks: Array<SealedChunk | StagedChunk>
}

/** Thrown by `seal` and `finish` when more was written than the limit the object was opened with. */
export class ObjectTooLargeError extends Error {
  readonly limit: number
  constructor(limit: number) {
    super(`the object is larger than ${limit} bytes`)
    this.limit = limit
    this.name = 'ObjectTooLargeError'
  }
}

export interface IncomingOptions {
  /** parses the object as a DICOM Part 10 file as it arrives (see `parsed`) */
  parser?: InstanceParser
  /** writes a chunk to the pack log ahead of its commit; without it, the whole object stays in memory */
  spill?: (chunk: SealedPieces) => Promise<StagedWrite>
}

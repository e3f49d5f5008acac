/**
 * A deflated data set (PS3.5 A.5) inflated into the data set reader within a bound on its inflated size, so a
 * deflate bomb is refused as too large rather than held: at once at the end (`sync`, for objects already in
 * memory), or on zlib's thread pool as the deflated bytes come (`async`, the archive).
 */
import { createInflateRaw, type InflateRaw, inflateRawSync } from 'node:zlib'
import { InvalidDicomError } from './errors.ts'
import type { DatasetReader } from './reader.ts'

/** Inflated pieces the data set reader takes at a time. */
const INFLATE_CHUNK = 256 * 1024
/**
 * Past BOMB_FLOOR inflated bytes, a data set that has inflated to more than BOMB_RATIO times the deflated bytes
 * zlib took in is refused as a deflate bomb, before the size limit: a bomb inflates about 1000 to 1, so without
 * this a few megabytes kept the thread pool inflating 2 GiB of zeros (seconds on a loaded machine) before the
 * limit refused them. Real data sets deflate a few times, not two hundred (it takes a data set almost all of one
 * byte); one refused can be sent again uncompressed.
 */
export const BOMB_FLOOR = 64 * 1024 * 1024
export const BOMB_RATIO = 200

/** Where a data set's bytes go: straight to the reader, or through an inflater first. */
export interface DatasetFeed {
  push(bytes: Uint8Array): void
  end(): Promise<void> | void
  skip?(count: number): boolean
}

const tooLarge = (limit: number): InvalidDicomError =>
  new InvalidDicomError(
    'too-large',
    `the deflated data set inflates to more than ${limit} bytes, over the size limit for one object`
  )
const bomb = (inflated: number, deflated: number): InvalidDicomError =>
  new InvalidDicomError(
    'too-large',
    `the deflated data set inflated ${inflated} bytes from ${deflated}, over ${BOMB_RATIO} to 1: refused as a ` +
      'deflate bomb; send it in an uncompressed transfer syntax'
  )

/** Keeps the deflated bytes, and inflates them at once at the end, within the bound. */
export function syncInflater(reader: DatasetReader, end: () => void, limit: number): DatasetFeed {
  const parts: Uint8Array[] = []
  return {
    push: bytes => {
      parts.push(Uint8Array.from(bytes))
    },
    end: () => {
      let inflated: Buffer
      try {
        inflated = inflateRawSync(Buffer.concat(parts), { maxOutputLength: limit })
      } catch (error) {
        if ((error as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') throw tooLarge(limit)
        throw new InvalidDicomError(
          'bad-deflate',
          `the deflated data set does not inflate: ${(error as Error).message}`
        )
      }
      reader.push(inflated)
      end()
    }
  }
}

/** Inflates on zlib's thread pool as the deflated bytes come, handing each inflated piece to the reader. */
export function asyncInflater(reader: DatasetReader, end: () => void, limit: number): DatasetFeed {
  const inflater: InflateRaw = createInflateRaw({ chunkSize: INFLATE_CHUNK })
  let inflated = 0
  let failure: Error | undefined
  const done = new Promise<void>((resolve, reject) => {
    inflater.on('data', (piece: Buffer) => {
      if (failure !== undefined) return
      inflated += piece.byteLength
      try {
        if (inflated > limit) throw tooLarge(limit)
        // bytesWritten: the deflated bytes handed to zlib so far (at most one write ahead of what it inflated).
        if (inflated > BOMB_FLOOR && inflated > BOMB_RATIO * inflater.bytesWritten) {
          throw bomb(inflated, inflater.bytesWritten)
        }
        reader.push(piece)
      } catch (error) {
        failure = error as Error
        inflater.destroy()
        reject(failure)
      }
    })
    inflater.on('error', error => {
      failure ??= new InvalidDicomError('bad-deflate', `the deflated data set does not inflate: ${error.message}`)
      reject(failure)
    })
    inflater.on('end', () => {
      if (failure !== undefined) return
      try {
        end()
        resolve()
      } catch (error) {
        reject(error as Error)
      }
    })
  })
  done.catch(() => {})
  return {
    push: bytes => {
      if (failure !== undefined) throw failure
      // Copied: the caller may reuse its memory before zlib reads it.
      inflater.write(Buffer.from(bytes))
    },
    end: async () => {
      if (failure === undefined) inflater.end()
      await done
    }
  }
}

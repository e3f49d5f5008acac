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

/**
 * A DICOM Part 10 file read as it arrives: the 128-byte preamble, "DICM", the File Meta Information (group
 * 0002, explicit VR little endian), then the data set, handed to a `DatasetReader` in the transfer syntax the
 * meta information names, and inflated on the way for the deflated syntaxes.
 *
 * Inflating is bounded and, when asked for (`inflate: 'async'`), streaming and off the event loop: zlib works
 * on the thread pool, the data set reader takes each inflated piece as it comes, and past `maxInflatedBytes`
 * the object is refused ('too-large'). Nothing of the inflated data is kept but what the visitor collects,
 * so a deflate bomb costs thread-pool time up to the bound, never memory. `inflate: 'sync'` inflates the
 * whole data set at once, within the same bound: for objects already in memory (tests, generated SR).
 *
 * `lenient` reads files as they are encoded rather than as they say they are (a meta header in implicit VR,
 * no transfer syntax, a data set in another encoding than the one named, zero padding at the end): for
 * showing what a file holds. The archive never stores such a file, and reads strictly.
 */
import {
  DEFLATED_SYNTAXES,
  DICM,
  isVr,
  LONG_VRS,
  PREAMBLE_LENGTH,
  type Syntax,
  syntaxOf,
  tagName
} from './dictionary.ts'
import { InvalidDicomError } from './errors.ts'
import { asyncInflater, type DatasetFeed, syncInflater } from './inflate.ts'
import { withoutTrailingPadding } from './padding.ts'
import { DatasetReader } from './reader.ts'
import type { DatasetVisitor, ReaderLimits } from './visitor.ts'

/** Read by the HTTP layer from here until it imports the dictionary. */
export { DEFLATED_SYNTAXES }

const PREFIX_LENGTH = PREAMBLE_LENGTH + DICM.length
/** The File Meta Information is a few hundred bytes; more than this is not a header. */
const MAX_META_BYTES = 64 * 1024

export interface FileMeta {
  /** the transfer syntax the data set is read in */
  transferSyntaxUid: string
  /** where the data set starts in the file */
  datasetOffset: number
  /** the meta elements' values by element number (0x0010 for the transfer syntax), trailing padding removed */
  elements: Map<number, string>
  /** the preamble starts like a Windows, ELF or Mach-O executable (CVE-2019-11687) */
  executablePreamble: boolean
}

export interface Part10Options {
  /** given the meta information, the visitor of the data set */
  dataset: (meta: FileMeta) => DatasetVisitor
  inflate: 'sync' | 'async'
  /** deflated data sets inflate to at most this many bytes */
  maxInflatedBytes: number
  limits?: ReaderLimits
  lenient?: boolean
}

export function isExecutable(prefix: Uint8Array): boolean {
  return (
    (prefix[0] === 0x4d && prefix[1] === 0x5a) || // MZ: DOS/Windows PE
    (prefix[0] === 0x7f && prefix[1] === 0x45 && prefix[2] === 0x4c && prefix[3] === 0x46) || // ELF
    (prefix[0] === 0xcf && prefix[1] === 0xfa && prefix[2] === 0xed && prefix[3] === 0xfe)
  ) // Mach-O
}

const isVrByte = (b: number | undefined): boolean => b !== undefined && b >= 0x41 && b <= 0x5a

export class Part10Reader {
  readonly #options: Part10Options
  /** the preamble, "DICM" and the meta information, gathered until the meta information ends */
  #head: Uint8Array = new Uint8Array(PREFIX_LENGTH)
  #headLength = 0
  #meta: FileMeta | undefined
  #sink: DatasetFeed | undefined
  /** lenient: the first bytes of the data set, held until its encoding can be told */
  #lead: Uint8Array[] = []
  #leadLength = 0
  #failure: Error | undefined
  #ended = false

  constructor(options: Part10Options) {
    this.#options = options
  }

  /** The meta information, once read. */
  get meta(): FileMeta | undefined {
    return this.#meta
  }

  /** `end` for a reader whose data set is read synchronously (`inflate: 'sync'`, or not deflated). */
  endSync(): void {
    if (this.#failure !== undefined) throw this.#failure
    this.#ended = true
    try {
      if (this.#sink === undefined) this.#metaEnds(true)
      const ended = (this.#sink as DatasetFeed).end()
      if (ended instanceof Promise) throw new Error('endSync on a reader that inflates asynchronously')
    } catch (error) {
      this.#failure = error as Error
      throw error
    }
  }

  /**
   * Passes over the file's next `count` bytes without their being read, when they lie inside a value the
   * visitor skips (not for a deflated data set). Returns false, skipping nothing, otherwise: push them then.
   */
  skip(count: number): boolean {
    if (this.#failure !== undefined) throw this.#failure
    return this.#sink?.skip?.(count) ?? false
  }

  /** Takes the file's next bytes. Throws InvalidDicomError as soon as something is wrong. */
  push(piece: Uint8Array): void {
    if (this.#failure !== undefined) throw this.#failure
    if (this.#ended) throw new Error('push after end')
    try {
      if (this.#sink !== undefined) {
        this.#sink.push(piece)
        return
      }
      this.#gather(piece)
    } catch (error) {
      this.#failure = error as Error
      throw error
    }
  }

  /** The file ends here: resolves once the data set (inflated, for deflate) has been read whole. */
  async end(): Promise<void> {
    if (this.#failure !== undefined) throw this.#failure
    this.#ended = true
    try {
      if (this.#sink === undefined) this.#metaEnds(true)
      await (this.#sink as DatasetFeed).end()
    } catch (error) {
      this.#failure = error as Error
      throw error
    }
  }

  /** Keeps bytes of the prefix and meta information until the meta information ends. */
  #gather(piece: Uint8Array): void {
    if (this.#headLength === 0) {
      // Most files come whole, or with their meta information in the first piece: read it in place, not copied
      // (a copy of every image received cost as much as reading its data set).
      this.#head = piece
      this.#headLength = piece.byteLength
      this.#metaEnds(false)
      // Not ended yet: kept as a copy, for the caller may reuse its buffer once `push` returns (a copy: a
      // Buffer's slice() is a view).
      if (this.#meta === undefined) this.#head = new Uint8Array(piece)
      return
    }
    const needed = this.#headLength + piece.byteLength
    if (needed > this.#head.byteLength) {
      // Bounded: the meta information ends, or is refused, within MAX_META_BYTES of complete elements.
      const grown = new Uint8Array(Math.max(needed, this.#head.byteLength * 2))
      grown.set(this.#head.subarray(0, this.#headLength))
      this.#head = grown
    }
    this.#head.set(piece, this.#headLength)
    this.#headLength += piece.byteLength
    this.#metaEnds(false)
  }

  /**
   * Reads what is gathered: once the meta information has ended (the next element is not of group 0002, or
   * the file ends), the rest goes to the data set. `final`: the file ends here.
   *
   * Walked here rather than by the data set reader: the walk must stop before the first element of another
   * group without reading its header, which is in the data set's encoding (implicit VR, big endian), and a
   * lenient read takes each meta element as explicit or implicit VR as it finds it.
   */
  #metaEnds(final: boolean): void {
    const head = this.#head.subarray(0, this.#headLength)
    if (head.byteLength < PREFIX_LENGTH) {
      if (!final) return
      throw new InvalidDicomError('not-part10', 'not a DICOM Part 10 file: no "DICM" after the 128-byte preamble')
    }
    if (DICM.some((b, i) => head[PREAMBLE_LENGTH + i] !== b)) {
      throw new InvalidDicomError('not-part10', 'not a DICOM Part 10 file: no "DICM" after the 128-byte preamble')
    }
    const view = new DataView(head.buffer, head.byteOffset, head.byteLength)
    const elements = new Map<number, string>()
    let at = PREFIX_LENGTH
    for (;;) {
      if (at + 2 > head.byteLength) {
        if (!final) {
          this.#tooLongMeta(at)
          return
        }
        break
      }
      if (view.getUint16(at, true) !== 0x0002) break
      if (at + 8 > head.byteLength) {
        if (!final) {
          this.#tooLongMeta(at)
          return
        }
        throw new InvalidDicomError(
          'truncated',
          'the File Meta Information runs past the end of the data: the file is truncated'
        )
      }
      const element = view.getUint16(at + 2, true)
      let length: number
      let header: number
      const explicit = isVrByte(head[at + 4]) && isVrByte(head[at + 5])
      if (explicit) {
        const vr = String.fromCharCode(head[at + 4] as number, head[at + 5] as number)
        if (!isVr(vr)) {
          throw new InvalidDicomError(
            'bad-vr',
            `element ${tagName(0x00020000 | element)} has VR "${vr}", which is not a DICOM VR`
          )
        }
        if (LONG_VRS.has(vr)) {
          if (at + 12 > head.byteLength) {
            if (!final) {
              this.#tooLongMeta(at)
              return
            }
            throw new InvalidDicomError(
              'truncated',
              'the File Meta Information runs past the end of the data: the file is truncated'
            )
          }
          length = view.getUint32(at + 8, true)
          header = 12
        } else {
          length = view.getUint16(at + 6, true)
          header = 8
        }
      } else if (this.#options.lenient === true) {
        length = view.getUint32(at + 4, true) // some writers put the meta information in implicit VR
        header = 8
      } else {
        const vr = String.fromCharCode(head[at + 4] as number, head[at + 5] as number).replace(/[^\x20-\x7e]/g, '?')
        throw new InvalidDicomError(
          'bad-vr',
          `File Meta Information element ${tagName(0x00020000 | element)} has VR "${vr}", which is not a DICOM VR`
        )
      }
      if (length === 0xffffffff) {
        throw new InvalidDicomError(
          'bad-meta',
          `File Meta Information element ${tagName(0x00020000 | element)} has undefined length`
        )
      }
      if (at + header + length > PREFIX_LENGTH + MAX_META_BYTES) {
        throw new InvalidDicomError(
          'bad-meta',
          `the File Meta Information is over ${MAX_META_BYTES} bytes: not a DICOM header`
        )
      }
      if (at + header + length > head.byteLength) {
        if (!final) return
        throw new InvalidDicomError(
          'truncated',
          `File Meta Information element ${tagName(0x00020000 | element)} runs past the end of the data: ` +
            'the file is truncated'
        )
      }
      const value = head.subarray(at + header, at + header + length)
      elements.set(element, withoutTrailingPadding(Buffer.from(value).toString('latin1')).trim())
      at += header + length
    }
    if (at === PREFIX_LENGTH && this.#options.lenient === true) {
      throw new InvalidDicomError(
        'not-part10',
        'not a DICOM Part 10 file: no File Meta Information (group 0002) after "DICM"'
      )
    }
    const declared = elements.get(0x0010)
    if ((declared === undefined || declared === '') && this.#options.lenient !== true) {
      throw new InvalidDicomError('bad-meta', 'the File Meta Information has no Transfer Syntax UID (0002,0010)')
    }
    this.#meta = {
      transferSyntaxUid: declared ?? '',
      datasetOffset: at,
      elements,
      executablePreamble: isExecutable(head)
    }
    // A view, as any piece pushed is: #head is never written again.
    const rest = head.subarray(at)
    this.#head = new Uint8Array(0)
    this.#headLength = 0
    this.#startDataset(rest, final)
  }

  /** The meta information has not ended yet: fine, unless it is already longer than any header. */
  #tooLongMeta(at: number): void {
    if (at > PREFIX_LENGTH + MAX_META_BYTES)
      throw new InvalidDicomError(
        'bad-meta',
        `the File Meta Information is over ${MAX_META_BYTES} bytes: not a DICOM header`
      )
  }

  #startDataset(first: Uint8Array, final: boolean): void {
    const meta = this.#meta as FileMeta
    if (this.#options.lenient === true) {
      // The encoding is told from the first element's bytes: hold the data set's first 6 bytes.
      this.#sink = {
        push: bytes => {
          this.#lenientLead(bytes, false)
        },
        end: () => {
          this.#lenientLead(new Uint8Array(0), true)
          return (this.#sink as DatasetFeed).end()
        }
      }
      this.#lenientLead(first, final)
      return
    }
    this.#sink = this.#datasetFeed(meta, syntaxOf(meta.transferSyntaxUid))
    if (first.byteLength > 0) this.#sink.push(first)
  }

  #lenientLead(bytes: Uint8Array, final: boolean): void {
    if (bytes.byteLength > 0) {
      this.#lead.push(bytes)
      this.#leadLength += bytes.byteLength
    }
    if (this.#leadLength < 6 && !final) {
      // Kept past this call: a copy, as the caller may reuse its buffer.
      this.#lead = [Buffer.concat(this.#lead)]
      return
    }
    const meta = this.#meta as FileMeta
    const lead = Buffer.concat(this.#lead)
    this.#lead = []
    let syntax = syntaxOf(meta.transferSyntaxUid)
    if (!DEFLATED_SYNTAXES.has(meta.transferSyntaxUid) && lead.byteLength >= 6) {
      const looksExplicit = isVrByte(lead[4]) && isVrByte(lead[5]) && isVr(lead.toString('latin1', 4, 6))
      if (looksExplicit !== syntax.explicit)
        syntax = { explicit: looksExplicit, little: syntax.little || !looksExplicit }
    }
    const sink = this.#datasetFeed(meta, syntax)
    this.#sink = sink
    if (lead.byteLength > 0) sink.push(lead)
  }

  #datasetFeed(meta: FileMeta, syntax: Syntax): DatasetFeed {
    const visitor = this.#options.dataset(meta)
    const reader = new DatasetReader(syntax, visitor, this.#options.limits)
    const end = (): void => {
      reader.end(this.#options.lenient === true ? { zeroTail: true } : {})
    }
    if (!DEFLATED_SYNTAXES.has(meta.transferSyntaxUid))
      return {
        push: bytes => {
          reader.push(bytes)
        },
        end,
        skip: count => reader.skip(count)
      }
    return this.#options.inflate === 'sync'
      ? syncInflater(reader, end, this.#options.maxInflatedBytes)
      : asyncInflater(reader, end, this.#options.maxInflatedBytes)
  }
}

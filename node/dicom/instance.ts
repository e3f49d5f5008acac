/**
 * What radmesh knows of a stored instance once it has read it (part10.ts): its UIDs, the attributes it
 * collects (dictionary.ts), and where its pixel data lies, so frames are cut without a second parse.
 */

export type AttributeValue = string | string[]
/** The items of a collected sequence, each its collected attributes by 8-hex tag. */
export type SequenceItems = Array<Record<string, AttributeValue>>

export type PixelDataLocation =
  | { encapsulated: false; offset: number; length: number }
  | { encapsulated: true; offsetTable: number[]; fragments: Array<{ offset: number; length: number }> }

export interface DicomInstance {
  transferSyntaxUid: string
  sopClassUid: string
  sopInstanceUid: string
  studyInstanceUid: string
  seriesInstanceUid: string
  /** where the data set begins in the file (after the File Meta Information) */
  datasetOffset: number
  /** top-level attributes from COLLECTED_ATTRIBUTES, keyed by 8-hex tag */
  attributes: Record<string, AttributeValue>
  /** top-level sequences from INDEXED_SEQUENCES that the instance has, keyed by 8-hex tag */
  sequences: Record<string, SequenceItems>
  /** offsets are from the start of the data set (of the inflated data set, for deflate) */
  pixelData?: PixelDataLocation
  /** the preamble starts like a Windows or ELF executable (CVE-2019-11687) */
  executablePreamble: boolean
}

/**
 * What radmesh knows of the DICOM standard, each fact stated once: value representations, the tags it names
 * (the structural ones, and the attributes it collects, indexes and answers QIDO-RS with, by keyword and VR),
 * transfer syntaxes and how each is encoded, and the DIMSE statuses it answers. The reader, the writer, the
 * archive's index and QIDO-RS all take their lists from here.
 *
 * The standard data dictionary itself (the VR of every tag, for implicit VR data sets) is dcmjs's, looked up
 * in implicit-vr.ts.
 */
import { TRANSFER_SYNTAX } from '../../protocol/dicomweb/transfer-syntaxes.ts'

export { TRANSFER_SYNTAX }

// ---- Value representations (PS3.5 6.2, 7.1.2) ----

/** VRs whose explicit VR header has 2 reserved bytes and a 4-byte length. */
export const LONG_VRS: ReadonlySet<string> = new Set([
  'OB',
  'OD',
  'OF',
  'OL',
  'OV',
  'OW',
  'SQ',
  'SV',
  'UC',
  'UN',
  'UR',
  'UT',
  'UV'
])
/** VRs whose explicit VR header has a 2-byte length. */
export const SHORT_VRS: ReadonlySet<string> = new Set([
  'AE',
  'AS',
  'AT',
  'CS',
  'DA',
  'DS',
  'DT',
  'FD',
  'FL',
  'IS',
  'LO',
  'LT',
  'PN',
  'SH',
  'SL',
  'SS',
  'ST',
  'TM',
  'UI',
  'UL',
  'US'
])

export const isVr = (vr: string): boolean => LONG_VRS.has(vr) || SHORT_VRS.has(vr)

/** VRs whose values are bytes (words of WORD_SIZE bytes), not text or numbers. */
export const BINARY_VRS: ReadonlySet<string> = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN'])
/** Bytes per word of a binary VR: what is swapped between big and little endian. */
export const WORD_SIZE: Readonly<Record<string, number>> = Object.freeze({ OW: 2, OF: 4, OL: 4, OD: 8, OV: 8 })
/** Text VRs that hold one value, never split at backslashes; their leading spaces are significant. */
export const SINGLE_VALUE_TEXT_VRS: ReadonlySet<string> = new Set(['LT', 'ST', 'UT', 'UR'])

/**
 * The longest value of the short text VRs radmesh writes (PS3.5 Table 6.2-1), in characters of the default
 * repertoire; a PN's limit is per component group.
 */
export const MAX_VALUE_LENGTH: Readonly<Record<string, number>> = Object.freeze({
  AE: 16,
  AS: 4,
  CS: 16,
  DA: 8,
  DS: 16,
  IS: 12,
  LO: 64,
  PN: 64,
  SH: 16,
  TM: 16,
  UI: 64
})

// ---- Tags ----

/** A tag as one unsigned number, (group << 16) | element. */
export const tag = (group: number, element: number): number => ((group << 16) | element) >>> 0

export const hex4 = (n: number): string => n.toString(16).toUpperCase().padStart(4, '0')
/** A tag as DICOM JSON and the index key it: 8 upper-case hex digits. */
export const hex8 = (t: number): string => t.toString(16).toUpperCase().padStart(8, '0')
/** A tag as people read it: (GGGG,EEEE). */
export const tagName = (t: number): string => `(${hex4(t >>> 16)},${hex4(t & 0xffff)})`

/** A value length that says the value ends at a delimiter instead (PS3.5 7.1.1). */
export const UNDEFINED_LENGTH = 0xffffffff

export const ITEM = 0xfffee000
export const ITEM_DELIMITER = 0xfffee00d
export const SEQUENCE_DELIMITER = 0xfffee0dd
export const PIXEL_DATA = 0x7fe00010
export const TRAILING_PADDING = 0xfffcfffc
export const SPECIFIC_CHARACTER_SET = 0x00080005

// ---- Part 10 files (PS3.10 7.1) ----

/** The preamble every Part 10 file starts with, then "DICM", then the File Meta Information (group 0002). */
export const PREAMBLE_LENGTH = 128
export const DICM: readonly number[] = Object.freeze([0x44, 0x49, 0x43, 0x4d])

// ---- Transfer syntaxes (PS3.5 10, A) ----

export interface Syntax {
  explicit: boolean
  little: boolean
}
export const IMPLICIT_LITTLE: Syntax = Object.freeze({ explicit: false, little: true })
export const EXPLICIT_LITTLE: Syntax = Object.freeze({ explicit: true, little: true })

/** How a data set in this transfer syntax is encoded (after inflating, for deflate). */
export const syntaxOf = (uid: string): Syntax => ({
  explicit: uid !== TRANSFER_SYNTAX.implicitLittle,
  little: uid !== TRANSFER_SYNTAX.explicitBig
})

/** Every transfer syntax radmesh stores, serves and accepts on its DICOM port. */
export const SUPPORTED_TRANSFER_SYNTAXES: ReadonlySet<string> = new Set(Object.values(TRANSFER_SYNTAX))

/** Transfer syntaxes whose pixel data is encapsulated (compressed, in fragments). */
export const ENCAPSULATED_SYNTAXES: ReadonlySet<string> = new Set([
  TRANSFER_SYNTAX.jpegBaseline,
  TRANSFER_SYNTAX.jpegExtended,
  TRANSFER_SYNTAX.jpegLossless,
  TRANSFER_SYNTAX.jpegLosslessSV1,
  TRANSFER_SYNTAX.jpegLsLossless,
  TRANSFER_SYNTAX.jpegLsNearLossless,
  TRANSFER_SYNTAX.jpeg2000Lossless,
  TRANSFER_SYNTAX.jpeg2000,
  TRANSFER_SYNTAX.rle
])

/** JPIP Referenced Deflate: not stored, but a file in it is read (its data set is deflated too). */
const JPIP_REFERENCED_DEFLATE = '1.2.840.10008.1.2.4.95'
/** Syntaxes whose data set, after the File Meta Information, is a raw deflate stream (PS3.5 A.5). */
export const DEFLATED_SYNTAXES: ReadonlySet<string> = new Set([
  TRANSFER_SYNTAX.deflatedExplicitLittle,
  JPIP_REFERENCED_DEFLATE
])

// ---- SOP classes (PS3.4 A.4, B.5) ----

/** The Verification SOP Class: C-ECHO. */
export const VERIFICATION_SOP_CLASS = '1.2.840.10008.1.1'
/** What every standard storage SOP class UID starts with. */
export const STORAGE_SOP_CLASS_ROOT = '1.2.840.10008.5.1.4.1.1.'
/** The root of every UID the standard defines: a UID outside it is private. */
export const DICOM_UID_ROOT = '1.2.840.10008.'

/** The Query/Retrieve information models answered (PS3.4 C.6.1, C.6.2), each with its C-FIND, C-MOVE, C-GET class. */
export type QueryModel = 'patient' | 'study'
export type QueryOperation = 'find' | 'move' | 'get'
export const QUERY_RETRIEVE_SOP_CLASSES: Readonly<Record<string, { model: QueryModel; operation: QueryOperation }>> =
  Object.freeze({
    '1.2.840.10008.5.1.4.1.2.1.1': { model: 'patient', operation: 'find' },
    '1.2.840.10008.5.1.4.1.2.1.2': { model: 'patient', operation: 'move' },
    '1.2.840.10008.5.1.4.1.2.1.3': { model: 'patient', operation: 'get' },
    '1.2.840.10008.5.1.4.1.2.2.1': { model: 'study', operation: 'find' },
    '1.2.840.10008.5.1.4.1.2.2.2': { model: 'study', operation: 'move' },
    '1.2.840.10008.5.1.4.1.2.2.3': { model: 'study', operation: 'get' }
  })

// ---- The attributes radmesh collects, indexes and answers QIDO-RS with ----

export type IndexLevel = 'study' | 'series' | 'instance'
export interface DicomAttribute {
  tag: string
  keyword: string
  vr: string
}

interface AttributeEntry extends DicomAttribute {
  /** collected from every instance stored, and kept on the index record of this level */
  indexed?: IndexLevel
  /** the QIDO-RS levels that return it by default (and, with the levels below them, match on it) */
  qido?: readonly IndexLevel[]
}

const STUDY: readonly IndexLevel[] = ['study']
const SERIES: readonly IndexLevel[] = ['series']
const INSTANCE: readonly IndexLevel[] = ['instance']
const ALL: readonly IndexLevel[] = ['study', 'series', 'instance']

/**
 * In tag order. Attributes with `qido` and no `indexed` are made by the archive (counts, modalities, URLs),
 * or, for the transfer syntax, taken from the File Meta Information.
 */
const ATTRIBUTES: readonly AttributeEntry[] = [
  { tag: '00020010', keyword: 'TransferSyntaxUID', vr: 'UI', qido: INSTANCE },
  { tag: '00080005', keyword: 'SpecificCharacterSet', vr: 'CS', indexed: 'study' },
  { tag: '00080016', keyword: 'SOPClassUID', vr: 'UI', indexed: 'instance', qido: INSTANCE },
  { tag: '00080018', keyword: 'SOPInstanceUID', vr: 'UI', indexed: 'instance', qido: INSTANCE },
  { tag: '00080020', keyword: 'StudyDate', vr: 'DA', indexed: 'study', qido: STUDY },
  { tag: '00080030', keyword: 'StudyTime', vr: 'TM', indexed: 'study', qido: STUDY },
  { tag: '00080050', keyword: 'AccessionNumber', vr: 'SH', indexed: 'study', qido: STUDY },
  { tag: '00080056', keyword: 'InstanceAvailability', vr: 'CS', qido: ['study', 'instance'] },
  { tag: '00080060', keyword: 'Modality', vr: 'CS', indexed: 'series', qido: SERIES },
  { tag: '00080061', keyword: 'ModalitiesInStudy', vr: 'CS', qido: STUDY },
  { tag: '00080090', keyword: 'ReferringPhysicianName', vr: 'PN', indexed: 'study', qido: STUDY },
  { tag: '00081030', keyword: 'StudyDescription', vr: 'LO', indexed: 'study', qido: STUDY },
  { tag: '0008103E', keyword: 'SeriesDescription', vr: 'LO', indexed: 'series', qido: SERIES },
  { tag: '00081190', keyword: 'RetrieveURL', vr: 'UR', qido: ALL },
  { tag: '00100010', keyword: 'PatientName', vr: 'PN', indexed: 'study', qido: STUDY },
  { tag: '00100020', keyword: 'PatientID', vr: 'LO', indexed: 'study', qido: STUDY },
  { tag: '00100021', keyword: 'IssuerOfPatientID', vr: 'LO', indexed: 'study' },
  { tag: '00100030', keyword: 'PatientBirthDate', vr: 'DA', indexed: 'study', qido: STUDY },
  { tag: '00100040', keyword: 'PatientSex', vr: 'CS', indexed: 'study', qido: STUDY },
  { tag: '00180015', keyword: 'BodyPartExamined', vr: 'CS', indexed: 'series', qido: SERIES },
  { tag: '0020000D', keyword: 'StudyInstanceUID', vr: 'UI', indexed: 'study', qido: ALL },
  { tag: '0020000E', keyword: 'SeriesInstanceUID', vr: 'UI', indexed: 'series', qido: ['series', 'instance'] },
  { tag: '00200010', keyword: 'StudyID', vr: 'SH', indexed: 'study', qido: STUDY },
  { tag: '00200011', keyword: 'SeriesNumber', vr: 'IS', indexed: 'series', qido: SERIES },
  { tag: '00200013', keyword: 'InstanceNumber', vr: 'IS', indexed: 'instance', qido: INSTANCE },
  { tag: '00201206', keyword: 'NumberOfStudyRelatedSeries', vr: 'IS', qido: STUDY },
  { tag: '00201208', keyword: 'NumberOfStudyRelatedInstances', vr: 'IS', qido: STUDY },
  { tag: '00201209', keyword: 'NumberOfSeriesRelatedInstances', vr: 'IS', qido: SERIES },
  { tag: '00280002', keyword: 'SamplesPerPixel', vr: 'US', indexed: 'instance' },
  { tag: '00280004', keyword: 'PhotometricInterpretation', vr: 'CS', indexed: 'instance' },
  { tag: '00280008', keyword: 'NumberOfFrames', vr: 'IS', indexed: 'instance', qido: INSTANCE },
  { tag: '00280010', keyword: 'Rows', vr: 'US', indexed: 'instance', qido: INSTANCE },
  { tag: '00280011', keyword: 'Columns', vr: 'US', indexed: 'instance', qido: INSTANCE },
  { tag: '00280100', keyword: 'BitsAllocated', vr: 'US', indexed: 'instance', qido: INSTANCE },
  { tag: '00280103', keyword: 'PixelRepresentation', vr: 'US', indexed: 'instance' },
  { tag: '00400244', keyword: 'PerformedProcedureStepStartDate', vr: 'DA', indexed: 'series', qido: SERIES },
  // The RIS's order numbers, for the HL7 result (ORC-2/3, OBR-2/3) to name the order it answers.
  { tag: '00402016', keyword: 'PlacerOrderNumberImagingServiceRequest', vr: 'LO', indexed: 'study' },
  { tag: '00402017', keyword: 'FillerOrderNumberImagingServiceRequest', vr: 'LO', indexed: 'study' }
]

const attribute = ({ tag, keyword, vr }: DicomAttribute): DicomAttribute => ({ tag, keyword, vr })
const byLevel = <T>(pick: (level: IndexLevel) => T): Record<IndexLevel, T> => ({
  study: pick('study'),
  series: pick('series'),
  instance: pick('instance')
})

/**
 * Top-level attributes read from every instance stored (for the index, the frame geometry and the report SR),
 * by 8-hex tag, with the VR used when the transfer syntax is implicit (explicit files carry their own VR).
 */
export const COLLECTED_ATTRIBUTES: Readonly<Record<string, string>> = Object.freeze(
  Object.fromEntries(ATTRIBUTES.filter(a => a.indexed !== undefined).map(a => [a.tag, a.vr]))
)

/** The collected attributes kept on the index record of each level, by 8-hex tag. */
export const INDEXED_TAGS: Readonly<Record<IndexLevel, string[]>> = byLevel(level =>
  ATTRIBUTES.filter(a => a.indexed === level).map(a => a.tag)
)

/**
 * Top-level sequences collected from every instance stored and kept on the index record of their level, with
 * the attributes of their items kept (the first MAX_SEQUENCE_ITEMS items; nested sequences are not kept):
 * what C-FIND sequence matching (PS3.4 C.2.2.2.6) matches on and returns.
 */
export interface IndexedSequence extends DicomAttribute {
  level: IndexLevel
  items: readonly DicomAttribute[]
}

export const MAX_SEQUENCE_ITEMS = 16

const CODE_ITEM: readonly DicomAttribute[] = [
  { tag: '00080100', keyword: 'CodeValue', vr: 'SH' },
  { tag: '00080102', keyword: 'CodingSchemeDesignator', vr: 'SH' },
  { tag: '00080103', keyword: 'CodingSchemeVersion', vr: 'SH' },
  { tag: '00080104', keyword: 'CodeMeaning', vr: 'LO' }
]

export const INDEXED_SEQUENCES: readonly IndexedSequence[] = [
  // General Study (PS3.3 C.7.2.1): the procedure performed, as codes (what a PACS's priors rule keys on).
  { tag: '00081032', keyword: 'ProcedureCodeSequence', vr: 'SQ', level: 'study', items: CODE_ITEM },
  // General Series, Request Attributes Macro (PS3.3 C.7.3.1, 10.13): the order the series answers.
  {
    tag: '00400275',
    keyword: 'RequestAttributesSequence',
    vr: 'SQ',
    level: 'series',
    items: [
      { tag: '00080050', keyword: 'AccessionNumber', vr: 'SH' },
      { tag: '00321060', keyword: 'RequestedProcedureDescription', vr: 'LO' },
      { tag: '00400007', keyword: 'ScheduledProcedureStepDescription', vr: 'LO' },
      { tag: '00400009', keyword: 'ScheduledProcedureStepID', vr: 'SH' },
      { tag: '00401001', keyword: 'RequestedProcedureID', vr: 'SH' }
    ]
  }
]

/** What each QIDO-RS level returns by default, and (with the levels above it) what it can match on. */
export const QIDO_ATTRIBUTES: Readonly<Record<IndexLevel, DicomAttribute[]>> = byLevel(level =>
  ATTRIBUTES.filter(a => a.qido?.includes(level) === true).map(attribute)
)

// ---- DIMSE statuses (PS3.7 Annex C, PS3.4 B.2.3) ----

export const DIMSE_STATUS = {
  success: 0x0000,
  /** Pending: a C-FIND match follows, or C-MOVE / C-GET sub-operations go on */
  pending: 0xff00,
  /** Cancel: the operation stopped at the SCU's C-CANCEL */
  cancel: 0xfe00,
  /** Warning: sub-operations complete, one or more failed (C-MOVE, C-GET) */
  subOperationsFailed: 0xb000,
  /** Refused: Out of Resources, unable to calculate the matches (a query past the node's bound) */
  tooManyMatches: 0xa701,
  /** Refused: Out of Resources, unable to perform sub-operations (C-MOVE, C-GET) */
  subOperationsRefused: 0xa702,
  /** Refused: Move Destination unknown */
  moveDestinationUnknown: 0xa801,
  /** Error: Identifier does not match SOP Class (C-FIND, C-MOVE, C-GET) */
  identifierMismatch: 0xa900,
  /** Refused: SOP Class not supported (on this presentation context) */
  sopClassNotSupported: 0x0122,
  /** Unrecognized operation: a service radmesh does not offer */
  unrecognizedOperation: 0x0211,
  /** Refused: Out of Resources (the node could not store it: disk, memory, files) */
  outOfResources: 0xa700,
  /** Error: Data Set does not match SOP Class (or the instance its request announced) */
  datasetMismatch: 0xa900,
  /** Error: Cannot understand (the object is not valid DICOM, or not what radmesh stores) */
  cannotUnderstand: 0xc000
} as const

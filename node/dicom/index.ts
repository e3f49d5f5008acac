/**
 * @packageDocumentation
 * DICOM, the one codec: what radmesh knows of the standard (dictionary.ts: VRs, tags and the attributes it
 * indexes, transfer syntaxes, DIMSE statuses), the one data set reader (reader.ts) that Part 10 files
 * (file.ts), the archive's index (part10.ts), the DICOM JSON model (json.ts) and DIMSE command sets read
 * through, the one writer (writer.ts), character sets (charsets.ts), frame geometry (geometry.ts), and the
 * DICOM port: a C-ECHO, C-STORE and Query/Retrieve SCP (scp.ts, with the identifiers of identifier.ts) on
 * radmesh's own Upper Layer (dimse/), an SCU for the C-STOREs of a C-MOVE (scu/), with the callers a site
 * allows and the destinations it names (peers.ts). Every object refused says why (errors.ts).
 */
export {
  COLLECTED_ATTRIBUTES,
  DEFLATED_SYNTAXES,
  type DicomAttribute,
  DIMSE_STATUS,
  INDEXED_TAGS,
  type IndexLevel,
  QIDO_ATTRIBUTES,
  tag,
  TRANSFER_SYNTAX
} from './dictionary.ts'
export { InvalidDicomError, type InvalidDicomReason } from './errors.ts'
export { type FrameGeometry, frameGeometry, MAX_FRAMES } from './geometry.ts'
export type { AttributeValue, DicomInstance, PixelDataLocation } from './instance.ts'
export {
  type BulkDataUriFor,
  bulkDataOf,
  type DicomJsonAttribute,
  type DicomJsonDataset,
  dicomJsonOf,
  type FilePiece,
  instanceToDicomJson,
  personName
} from './json.ts'
export { InstanceParser, parsePart10, safeForDownload } from './part10.ts'
export { type Identifier, type IdentifierValue, readIdentifier, writeIdentifier } from './identifier.ts'
export {
  type DicomCaller,
  type DicomDestination,
  loadAllowedCallers,
  loadDicomPeers,
  parseAllowAe,
  parseDicomPeers
} from './peers.ts'
export {
  type DatasetSink,
  DEFAULT_DICOM_LIMITS,
  type DicomLimits,
  type DicomScp,
  type DicomScpOptions,
  type QueryRetrieveProvider,
  startDicomScp,
  type StoreHeader,
  type StoreOutcome,
  type StoreRequest
} from './scp.ts'
export { isStrictUid, uidProblem } from './uids.ts'
export { type Dataset, type Element, part10Header, writeDataset } from './writer.ts'

/**
 * The DICOM writer is node/dicom/writer.ts; its callers in test/archive and test/e2e import it from here until
 * they take it from there.
 */
export { type Dataset, type Element, type ElementValue, writeDataset } from '../dicom/writer.ts'
export { tag } from '../dicom/dictionary.ts'

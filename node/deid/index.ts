/**
 * @packageDocumentation
 * De-identification: a copy of a study that does not carry the patient's identity, for a second opinion from
 * outside the patient's care or a teaching case. DICOM PS3.15 Annex E, the Basic Application Level
 * Confidentiality Profile (Table E.1-1 as data in table.ts, applied at every depth by profile.ts), with the
 * Retain Longitudinal Temporal Information (full or modified dates) and Retain Patient Characteristics
 * options; UIDs replaced consistently within the copy and the mapping back kept by whoever made it
 * (deidentify.ts), sealed in the site's database (mappings.ts); read and written through the one DICOM codec
 * (dataset.ts), pixel data untouched. An image that says identity is burned into its pixels is refused unless
 * the site says it is clean (errors.ts).
 *
 * @example
 * const options = { retainDates: 'modified', retainPatientCharacteristics: true } as const
 * const { deidentifier, instances } = deidentifyStudy(files, options)
 * instances[0].studyInstanceUid // the copy's new Study Instance UID
 */
export { type DeidentifiedInstance, Deidentifier, type DeidentifyOptions, deidentifyStudy } from './deidentify.ts'
export { type DeidentificationReason, DeidentificationError } from './errors.ts'
export { type DeidMapping, DeidMappings } from './mappings.ts'
export { type Action, actionFor, type ProfileOptions, type RetainDates } from './profile.ts'
export { ANNEX_E, type TableRow } from './table.ts'

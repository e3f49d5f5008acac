import { RadmeshError } from '../errors.ts'

/** Why a DICOM object was refused; stable, so tests and the audit trail can name it. */
export type InvalidDicomReason =
  | 'not-part10'
  | 'bad-meta'
  | 'unsupported-syntax'
  | 'truncated'
  | 'bad-vr'
  | 'bad-structure'
  | 'too-deep'
  | 'bad-deflate'
  | 'missing-attribute'
  | 'bad-uid'
  | 'too-large'
  | 'bad-pixel-data'
  | 'not-as-announced'

/**
 * A DICOM object radmesh will not store. Answered as a DIMSE failure status with this message as the
 * error comment, as a STOW-RS failed-SOP entry, or as one line of `radmesh import`.
 */
export class InvalidDicomError extends RadmeshError {
  readonly reason: InvalidDicomReason
  constructor(reason: InvalidDicomReason, message: string) {
    super('RADMESH_INVALID_DICOM', message)
    this.name = 'InvalidDicomError'
    this.reason = reason
  }
}

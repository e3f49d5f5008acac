import { RadmeshError } from '../errors.ts'

/**
 * Why an object was not de-identified: `burned-in-annotation` (it says identity may be written into its
 * pixels, and the site has not said they are clean), `unsupported` (an encoding radmesh cannot rewrite
 * without touching the pixel data), `missing-attribute` (no SOP Class or SOP Instance UID to make a copy of).
 */
export type DeidentificationReason = 'burned-in-annotation' | 'unsupported' | 'missing-attribute'

/** An object radmesh will not send as a de-identified copy; nothing of it is sent. */
export class DeidentificationError extends RadmeshError {
  readonly reason: DeidentificationReason
  constructor(reason: DeidentificationReason, message: string) {
    super('RADMESH_NOT_DEIDENTIFIABLE', message)
    this.name = 'DeidentificationError'
    this.reason = reason
  }
}

/**
 * C-STORE into the archive: wrap the received data set in a Part 10 file (new File Meta Information, as
 * every C-STORE SCP writes) and store it; map the outcome to a DIMSE status with an error comment.
 */
import type { StoreOutcome as DimseOutcome, StoreRequest } from '../dicom/scp.ts'
import { InvalidDicomError } from '../dicom/errors.ts'
import { buildPart10 } from '../dicom/part10.ts'
import type { Archive } from './archive.ts'

/** PS3.4 Annex B.2.3 C-STORE statuses */
export const DIMSE_STATUS = { success: 0x0000, outOfResources: 0xa700, datasetMismatch: 0xa900, cannotUnderstand: 0xc000 } as const

/** DIMSE error comments are LO: 64 characters at most. */
const comment = (text: string): string => text.length <= 64 ? text : `${text.slice(0, 61)}...`

export async function storeFromNetwork (archive: Archive, request: StoreRequest): Promise<DimseOutcome> {
  const file = buildPart10(request.dataset, {
    sopClassUid: request.sopClassUid,
    sopInstanceUid: request.sopInstanceUid,
    transferSyntaxUid: request.transferSyntaxUid,
    sourceAeTitle: request.callingAeTitle
  })
  try {
    const { instance } = await archive.store(file, { type: 'ae', id: request.callingAeTitle })
    if (instance.sopUid !== request.sopInstanceUid) {
      return { status: DIMSE_STATUS.datasetMismatch, errorComment: comment('SOP Instance UID in data set differs from the request') }
    }
    return { status: DIMSE_STATUS.success }
  } catch (error) {
    if (error instanceof InvalidDicomError) return { status: DIMSE_STATUS.cannotUnderstand, errorComment: comment(error.message) }
    return { status: DIMSE_STATUS.outOfResources, errorComment: comment(`not stored: ${(error as Error).message}`) }
  }
}

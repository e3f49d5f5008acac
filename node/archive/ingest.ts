/**
 * C-STORE into the archive: each data set is written, as its PDVs arrive, into an archive IncomingObject after a
 * new File Meta Information (as every C-STORE SCP writes), so hashing and sealing keep pace with the network;
 * then stored, and the outcome mapped to a DIMSE status with an error comment.
 */
import type { DatasetSink, StoreOutcome as DimseOutcome, StoreHeader, StoreRequest } from '../dicom/scp.ts'
import { DIMSE_STATUS } from '../dicom/dictionary.ts'
import { InvalidDicomError } from '../dicom/errors.ts'
import { part10Header } from '../dicom/part10.ts'
import type { Archive } from './archive.ts'
import type { IncomingObject } from './incoming.ts'

/** DIMSE error comments are LO: 64 characters at most. */
const comment = (text: string): string => (text.length <= 64 ? text : `${text.slice(0, 61)}...`)

/**
 * The SCP's openDataset: a Part 10 file begun with the request's meta information, filled as PDVs come. The
 * archive says when to wait (its bytes on their way to disk at their bound) and the SCP pauses the socket until
 * `drain`; a data set whose association ends before it is stored is released at once.
 */
export function openNetworkDataset(archive: Archive, header: StoreHeader): DatasetSink<IncomingObject> {
  const incoming = archive.incoming(header.sopInstanceUid)
  // Not waited for: a few hundred bytes, and the first PDV's write answers for both.
  incoming.write(
    part10Header({
      sopClassUid: header.sopClassUid,
      sopInstanceUid: header.sopInstanceUid,
      transferSyntaxUid: header.transferSyntaxUid,
      sourceAeTitle: header.callingAeTitle
    })
  )
  return {
    write: part => incoming.write(part),
    drain: async () => {
      await incoming.drain()
    },
    finish: () => incoming,
    release: () => {
      incoming.release()
    }
  }
}

export async function storeFromNetwork(archive: Archive, request: StoreRequest<IncomingObject>): Promise<DimseOutcome> {
  try {
    // A data set that is not the instance the request announced is refused before it is stored: its SCU is told
    // it failed, and nothing of it stays.
    const expected = { sopClassUid: request.sopClassUid, sopInstanceUid: request.sopInstanceUid }
    await archive.storeIncoming(request.dataset, { type: 'ae', id: request.callingAeTitle }, expected)
    return { status: DIMSE_STATUS.success }
  } catch (error) {
    if (error instanceof InvalidDicomError) {
      const status = error.reason === 'not-as-announced' ? DIMSE_STATUS.datasetMismatch : DIMSE_STATUS.cannotUnderstand
      return { status, errorComment: comment(error.message) }
    }
    return { status: DIMSE_STATUS.outOfResources, errorComment: comment(`not stored: ${(error as Error).message}`) }
  }
}

/**
 * Sending a DIMSE message on an association, either side: its command, then its data set as it is read (a
 * stored instance comes a chunk at a time), in P-DATA-TF PDUs no longer than the peer takes, the socket's
 * buffer drained before the next piece goes. Nothing is re-encoded: the data set's bytes go as they are.
 */
import type { Socket } from 'node:net'
import { type Command, encodeCommand } from '../dimse/command.ts'
import { encodePDataTf } from '../dimse/pdu.ts'

/** Writes `bytes`; when the socket's buffer is full, resolves once it drains (rejects if the socket closes first). */
export async function written(socket: Socket, bytes: Buffer): Promise<void> {
  if (socket.destroyed) throw new Error('the connection is closed')
  if (socket.write(bytes)) return
  await new Promise<void>((resolve, reject) => {
    const drained = (): void => {
      socket.off('close', closed)
      resolve()
    }
    const closed = (): void => {
      socket.off('drain', drained)
      reject(new Error('the connection closed'))
    }
    socket.once('drain', drained)
    socket.once('close', closed)
  })
}

/**
 * A command and, when given, its data set in pieces (their order kept, empty ones skipped), on presentation
 * context `contextId`; `maxPduLength`: the peer's maximum length received (0 = no limit).
 */
export async function sendMessage(
  socket: Socket,
  contextId: number,
  command: Command,
  dataset: AsyncIterable<Uint8Array> | undefined,
  maxPduLength: number
): Promise<void> {
  await written(socket, encodePDataTf(contextId, true, encodeCommand(command), maxPduLength))
  if (dataset === undefined) return
  // One piece is held back, so the last one sent is known and its last PDV flagged last.
  let held: Uint8Array | undefined
  for await (const piece of dataset) {
    if (piece.length === 0) continue
    if (held !== undefined) await written(socket, encodePDataTf(contextId, false, held, maxPduLength, false))
    held = piece
  }
  await written(socket, encodePDataTf(contextId, false, held ?? new Uint8Array(0), maxPduLength))
}

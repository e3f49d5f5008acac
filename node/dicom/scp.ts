/**
 * The DICOM port: a C-ECHO and C-STORE SCP for modalities and PACS that push studies to a node, and, given a
 * `queryRetrieve` provider, a Query/Retrieve SCP (C-FIND, C-MOVE, C-GET) for those that query and fetch from it;
 * on radmesh's own DICOM Upper Layer (PS3.8, `dimse/pdu.ts`) and DIMSE command sets (PS3.7, `dimse/command.ts`)
 * over node:net. Its parts are in scp/: each connection and its association (connection.ts), negotiating it
 * (negotiation.ts), putting DIMSE messages together from PDVs (messages.ts), the operations answered
 * (operations.ts; Query/Retrieve in query-retrieve.ts, query-session.ts, sub-operations.ts, on the SCU of
 * ../scu/), and the limits (limits.ts).
 *
 * Every data set reaches `onStore` exactly as the SCU sent it, in the transfer syntax negotiated for its
 * presentation context: its PDV fragments go, as slices of the TCP reads they came in (tiny ones gathered in
 * 64 KiB batches), to a sink (by default joined once at the end; the archive hashes and seals them as they
 * come), never parsed or re-encoded here (parsing is slow and may alter bytes; the archive checks what it
 * stores).
 * Each presentation context is accepted with the first transfer syntax the SCU proposes that radmesh can
 * store, so an SCU never has to convert.
 *
 * Bytes from the network are trusted with little: each PDU header is checked before any of its body is kept
 * (unknown types, PDUs out of place and oversized PDUs end the connection, with an A-ABORT), and every
 * protocol or network error ends only its own connection, logged at warn. No asynchronous operations window
 * is negotiated: an association does one operation at a time, and its C-STOREs are answered in order.
 *
 * The port needs no login, so what one peer can hold is bounded (`DicomLimits`, each a `radmesh start` option):
 * at most `maxAssociations` associations at once (past it, A-ASSOCIATE-RJ transient, local limit exceeded);
 * a data set is never held here: its sink takes it as it comes and says when to wait, and the socket is paused
 * until it may write again; a data set its association leaves unfinished is released when the association ends;
 * a PDU or DIMSE message that stops midway ends its association after `pduTimeoutMs` without a byte; and, with
 * an allow-list, only the calling AE titles it names, from their addresses, may associate.
 */
import { createServer, type Socket } from 'node:net'
import type { Logger } from '../log.ts'
import { CallerAllowList } from './peers.ts'
import { Connection, type Shared } from './scp/connection.ts'
import { type DicomLimits, limitsOf, MAX_PENDING_CONNECTIONS, RejectionLog } from './scp/limits.ts'
import {
  collectDataset,
  type DatasetSink,
  type StoreHeader,
  type StoreOutcome,
  type StoreRequest
} from './scp/operations.ts'
import type { QueryRetrieveProvider } from './scp/query-retrieve.ts'

export { DEFAULT_DICOM_LIMITS, type DicomLimits } from './scp/limits.ts'
export { ACCEPTED_TRANSFER_SYNTAXES } from './scp/negotiation.ts'
export type { DatasetSink, StoreHeader, StoreOutcome, StoreRequest } from './scp/operations.ts'
export type {
  Destination,
  QueryLevel,
  QueryRequest,
  QueryRetrieveProvider,
  Refusal,
  RetrieveInstance,
  RetrieveReport
} from './scp/query-retrieve.ts'

export interface DicomScpOptions<D = Uint8Array> extends Partial<DicomLimits> {
  /** 0 = any free port. */
  port: number
  /** Default '0.0.0.0'. */
  host?: string
  /** The called AE title this SCP answers to. */
  aeTitle: string
  /**
   * Opens a sink for each data set as its command arrives, so work can start before the last PDV. Required
   * when D is not Uint8Array; by default the PDV fragments are kept and joined once at the end.
   */
  openDataset?: (header: StoreHeader) => DatasetSink<D>
  onStore(request: StoreRequest<D>): Promise<StoreOutcome>
  /** Query/Retrieve (C-FIND, C-MOVE, C-GET); without it, their presentation contexts are refused */
  queryRetrieve?: QueryRetrieveProvider
  log: Logger
}

export interface DicomScp {
  port: number
  stop(): Promise<void>
}

export async function startDicomScp<D = Uint8Array>(options: DicomScpOptions<D>): Promise<DicomScp> {
  const log = options.log.child({ component: 'dicom-scp' })
  const limits = limitsOf(options)
  const allowList = new CallerAllowList(limits.allowedCallers, log)
  await allowList.start()
  const shared: Shared<D> = {
    aeTitle: options.aeTitle,
    limits,
    // Without openDataset, D is Uint8Array (see DicomScpOptions).
    openDataset: options.openDataset ?? (collectDataset as unknown as () => DatasetSink<D>),
    onStore: request => options.onStore(request),
    queryRetrieve: options.queryRetrieve,
    allowList,
    log,
    inFlight: new Set(),
    associations: 0,
    rejections: new RejectionLog()
  }
  const sockets = new Set<Socket>()
  const server = createServer({ noDelay: true }, socket => {
    sockets.add(socket)
    socket.once('close', () => {
      sockets.delete(socket)
    })
    try {
      new Connection(socket, shared)
    } catch (error) {
      log.warn({ err: error }, 'DICOM connection could not be set up')
      socket.destroy()
    }
  })
  // Connections past this are closed unanswered: enough for every association and a few negotiating, and no
  // more, so a flood of idle connections cannot take the node's file descriptors.
  server.maxConnections = limits.maxAssociations + MAX_PENDING_CONNECTIONS
  server.on('drop', () => {
    shared.rejections.warn(
      log,
      'connections',
      { maxConnections: server.maxConnections },
      'DICOM connection dropped: too many connections'
    )
  })
  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error): void => {
      reject(error)
    }
    server.once('error', onError)
    server.listen(options.port, options.host ?? '0.0.0.0', () => {
      server.off('error', onError)
      resolve()
    })
  }).catch((error: unknown) => {
    allowList.stop()
    throw error
  })
  server.on('error', error => {
    log.warn({ err: error }, 'DICOM listener error')
  })
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('DICOM listener has no TCP address')
  log.info(
    {
      port: address.port,
      aeTitle: options.aeTitle,
      maxAssociations: limits.maxAssociations,
      pduTimeoutMs: limits.pduTimeoutMs,
      allowedCallers: limits.allowedCallers.length
    },
    'DICOM SCP listening'
  )
  let stopped: Promise<void> | undefined
  return {
    port: address.port,
    /**
     * Closes the listener and every connection, then waits for the onStore calls still running (their answers
     * are dropped).
     */
    stop: async () => {
      stopped ??= (async () => {
        allowList.stop()
        const closed = new Promise<void>(resolve => {
          server.close(() => {
            resolve()
          })
        })
        for (const socket of sockets) socket.destroy()
        await closed
        await Promise.allSettled([...shared.inFlight])
      })()
      await stopped
    }
  }
}

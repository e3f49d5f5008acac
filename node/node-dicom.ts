/**
 * The DICOM port of a node (`--dicom`), as `createNode()` (node.ts) starts it: the C-STORE SCP into the
 * archive, with C-FIND/C-MOVE over it to the destinations of HOME/dicom-peers.json and the options.
 */
import type { Archive } from './archive/archive.ts'
import { openNetworkDataset, storeFromNetwork } from './archive/index.ts'
import { DimseQuery } from './archive/dimse-query.ts'
import type { AuditLog } from './audit/log.ts'
import { loadAllowedCallers, loadDicomPeers } from './dicom/peers.ts'
import { type DicomScp, startDicomScp } from './dicom/scp.ts'
import { ListenError } from './errors.ts'
import type { Logger } from './log.ts'
import { isAddressInUse, type NodeOptions } from './node-options.ts'

export interface DicomWiring {
  /** HOME, where dicom-peers.json is */
  home: string
  /** the HTTP host: the DICOM port listens on every interface when HTTP is on 127.0.0.1, else on the same host */
  host: string
  aeTitle: string
  archive: Archive
  audit: AuditLog
  log: Logger
}

/** Starts the DICOM port on `port`; a taken port is a ListenError. */
export async function startDicom(
  options: NodeOptions,
  port: number,
  { home, host, aeTitle, archive, audit, log }: DicomWiring
): Promise<DicomScp> {
  try {
    const allowedCallers = [...(options.dicomLimits?.allowedCallers ?? []), ...(await loadAllowedCallers(home))]
    const peers = [...(await loadDicomPeers(home)), ...(options.dicomPeers ?? [])]
    const destinations = new Map(peers.map(peer => [peer.aeTitle, peer]))
    return await startDicomScp({
      ...options.dicomLimits,
      allowedCallers,
      port,
      host: host === '127.0.0.1' ? '0.0.0.0' : host,
      aeTitle,
      log,
      openDataset: header => openNetworkDataset(archive, header),
      onStore: async request => await storeFromNetwork(archive, request),
      queryRetrieve: new DimseQuery({ archive, audit, destinations })
    })
  } catch (error) {
    if (isAddressInUse(error))
      throw new ListenError(
        'RADMESH_ADDRESS_IN_USE',
        `cannot listen for DICOM on port ${port}: address already in use; choose another --dicom port`,
        { cause: error }
      )
    throw error
  }
}

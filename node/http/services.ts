/**
 * What the HTTP layer may use of the node: a narrow view, so routes only translate and the work stays
 * in the node's capabilities.
 */
import type { MemberCertificate } from '../../protocol/membership/index.ts'
import type { Archive } from '../archive/archive.ts'
import type { AuditLog } from '../audit/log.ts'
import type { ReportDelivery } from '../collab/delivery.ts'
import type { Documents } from '../collab/documents.ts'
import type { Reports } from '../collab/reports.ts'
import type { Presence } from '../collab/presence.ts'
import type { SyncService } from '../collab/sync.ts'
import type { ReadingWorkflow } from '../collab/workflow.ts'
import type { Worklist } from '../collab/worklist.ts'
import type { Exchange } from '../exchange/exchange.ts'
import type { MembershipRegistry } from '../membership/registry.ts'
import type { RevocationSpreader } from '../membership/revocation-spread.ts'
import type { RadmeshHost } from '../p2p/host.ts'

export interface ConnectedMember {
  peerId: string
  name: string
  role: string
  subspecialties: string[]
  addrs: string[]
}

export interface NodeServices {
  peerId: string
  certificate: MemberCertificate
  host: RadmeshHost
  registry: MembershipRegistry
  revocations: RevocationSpreader
  archive: Archive
  exchange: Exchange
  worklist: Worklist
  reports: Reports
  documents: Documents
  sync: SyncService
  presence: Presence
  workflow: ReadingWorkflow
  delivery: ReportDelivery
  audit: AuditLog
  auditPath: string
  connectedMembers (): ConnectedMember[]
}

/**
 * `createNode()`: the one place where a radmesh node is wired together and started, in order:
 * HOME (identity, certificate) -> database -> archive -> membership registry -> libp2p host (handshake,
 * gater) -> revocation spreading -> exchange -> documents, worklist, reports, workflow, sync -> redial ->
 * DICOM -> HTTP. `stop()` undoes it in reverse.
 */
import { promises as fs } from 'node:fs'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import type { FastifyInstance } from 'fastify'
import { decodeRevocation } from '../protocol/membership/index.ts'
import { ListenError, RadmeshError } from './errors.ts'
import { exists, SECRET_FILE_MODE, toJsonText, writeFileAtomic } from './files.ts'
import { Sessions, newSecret } from './http/auth.ts'
import { createHttpServer } from './http/server.ts'
import { DeidMappings } from './deid/mappings.ts'
import type { ConnectedMember } from './http/services.ts'
import type { MemberCertificate } from '../protocol/membership/index.ts'
import type { AuditLog } from './audit/log.ts'
import { StudyAccess } from './archive/access.ts'
import type { Archive } from './archive/archive.ts'
import { LiveReports } from './reports/live-report.ts'
import type { HomePaths } from './identity/home.ts'
import { loadMember, type Member } from './identity/member.ts'
import { createLogger, type Logger } from './log.ts'
import { MembershipRegistry } from './membership/registry.ts'
import { RevocationSpreader } from './membership/revocation-spread.ts'
import { createHost, type RadmeshHost } from './p2p/host.ts'
import { connectedMembers as linksOf } from './p2p/links.ts'
import { relayPeers, type RelayServeOptions } from './p2p/relay.ts'
import { BAN_MS, PeerPenalties } from './p2p/penalties.ts'
import { MembershipEnforcer } from './membership/enforcer.ts'
import {
  DEFAULT_PREALLOCATE_READER,
  DEFAULT_PREALLOCATE_SITE,
  openArchive,
  openNetworkDataset,
  StorageKey,
  storeFromNetwork
} from './archive/index.ts'
import { Exchange, StudyVersions } from './exchange/index.ts'
import { type DicomLimits, startDicomScp } from './dicom/scp.ts'
import { type DicomDestination, loadAllowedCallers, loadDicomPeers } from './dicom/peers.ts'
import { DimseQuery } from './archive/dimse-query.ts'
import { ConnectionPruner } from './p2p/prune.ts'
import { Redialer } from './p2p/redial.ts'
import { ReportDelivery } from './reports/delivery.ts'
import { Hl7Outbox, Hl7Sender, type RisAddress } from './reports/hl7/index.ts'
import { CaseIndex } from './worklist/case-index.ts'
import { CriticalResults } from './worklist/critical-results.ts'
import { Documents } from './crdt/documents.ts'
import { UpdateInspector } from './crdt/inspect.ts'
import { Reports } from './reports/reports.ts'
import { loadRouting } from './worklist/routing.ts'
import { DocStore } from './crdt/store.ts'
import { Presence } from './crdt/presence.ts'
import { SyncService } from './crdt/sync.ts'
import { ReadingWorkflow } from './workflow/workflow.ts'
import { Worklist } from './worklist/worklist.ts'
import { openDatabase, type Database } from './store/database.ts'

export const DEFAULT_LISTEN = ['/ip4/0.0.0.0/tcp/7400', '/ip4/0.0.0.0/tcp/7401/ws']
export const DEFAULT_HTTP = '127.0.0.1:7480'

export const DEFAULT_AE_TITLE = 'RADMESH'
export const DEFAULT_STABLE_AFTER_MS = 30_000

export interface NodeOptions {
  home: string
  /** C-STORE SCP port; no DICOM listener when undefined */
  dicomPort?: number
  aeTitle?: string
  /** the DICOM port's limits (defaults in dicom/scp.ts); allowed callers add to those of HOME/dicom-peers.json */
  dicomLimits?: Partial<DicomLimits>
  /** C-MOVE destinations; they add to those of HOME/dicom-peers.json (and win over one of the same AE title) */
  dicomPeers?: DicomDestination[]
  /** quiet time after the last instance before a study is "stable" */
  stableAfterMs?: number
  listen?: string[]
  /** addresses announced to other members instead of the listen addresses */
  announce?: string[]
  peers?: string[]
  /** serve as a relay for members (`--relay`), with these limits; relays to keep a reservation on (`--relay-via`) */
  relay?: RelayServeOptions
  relayVia?: string[]
  http?: string
  mdns?: boolean
  sessionIdleMs?: number
  /** how often shared documents are checked against each member's (changes go out at once regardless) */
  resyncIntervalMs?: number
  /** origins allowed to call the DICOMweb routes from a browser (an OHIF served elsewhere) */
  corsOrigins?: string[]
  /** bytes of pack space kept zero-filled ahead of the archive's writes (see archive/pack/writer.ts) */
  preallocateBytes?: number
  /** the site's RIS for HL7 ORU^R01 over MLLP (wins over `ris` in routing.json); first retry after `risRetryMs` */
  ris?: RisAddress
  risRetryMs?: number
}

/** The capabilities of a running node, for the CLI and the scripts that drive one. */
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
  connectedMembers(): ConnectedMember[]
}

export interface RunningNode extends NodeServices {
  member: Member
  log: Logger
  httpUrl: string
  dicomPort: number | undefined
  aeTitle: string
  listenAddrs(): string[]
  signInUrl(): string
  stop(): Promise<void>
}

export function parseMultiaddrs(values: string[], flag: string): Multiaddr[] {
  return values.map(value => {
    try {
      return multiaddr(value)
    } catch (error) {
      throw new ListenError(
        'RADMESH_BAD_MULTIADDR',
        `${flag} ${value} is not a multiaddr (${(error as Error).message}); ` +
          'write it like /ip4/192.0.2.10/tcp/7400/p2p/12D3KooW…'
      )
    }
  })
}

export function parseHostPort(value: string): { host: string; port: number } {
  const match = /^(.*):(\d{1,5})$/.exec(value)
  const port = Number(match?.[2])
  if (match?.[1] === undefined || match[1] === '' || port > 65535)
    throw new RadmeshError('RADMESH_USAGE', `--http ${value}: write HOST:PORT, e.g. 127.0.0.1:7480`)
  return { host: match[1].replace(/^\[(.*)\]$/, '$1'), port }
}

export async function ensureApiToken(paths: HomePaths): Promise<string> {
  if (!(await exists(paths.apiToken))) await writeFileAtomic(paths.apiToken, `${newSecret()}\n`, SECRET_FILE_MODE)
  return (await fs.readFile(paths.apiToken, 'utf8')).trim()
}

function isAddressInUse(error: unknown): boolean {
  for (
    let e = error as { code?: string; message?: string; cause?: unknown } | undefined;
    e != null;
    e = e.cause as typeof e
  ) {
    if (e.code === 'EADDRINUSE' || /EADDRINUSE|address already in use/i.test(e.message ?? '')) return true
  }
  return false
}

export async function createNode(options: NodeOptions): Promise<RunningNode> {
  const member = await loadMember(options.home)
  const listen = parseMultiaddrs(options.listen ?? DEFAULT_LISTEN, '--listen')
  const relayVia = parseMultiaddrs(options.relayVia ?? [], '--relay-via')
  const peers = [...parseMultiaddrs(options.peers ?? [], '--peer'), ...relayVia]
  const http = parseHostPort(options.http ?? DEFAULT_HTTP)
  const apiToken = await ensureApiToken(member.paths)
  const log = createLogger(member.paths.log, { peerId: member.identity.peerId, name: member.certificate.name })

  const cleanups: Array<() => Promise<void> | void> = []
  const stop = async (): Promise<void> => {
    for (const cleanup of cleanups.reverse())
      await Promise.resolve(cleanup()).catch(error => log.error({ err: error }, 'stop step failed'))
    cleanups.length = 0
    await fs.rm(member.paths.running, { force: true })
  }

  try {
    const db: Database = await openDatabase(member.paths.database)
    cleanups.push(async () => {
      await db.close()
    })
    const storageKey = await StorageKey.load(member.paths.storageKey)
    const {
      archive,
      audit,
      close: closeArchive
    } = await openArchive({
      db,
      key: storageKey,
      chunks: member.paths.chunks,
      audit: member.paths.audit,
      log,
      stableAfterMs: options.stableAfterMs ?? DEFAULT_STABLE_AFTER_MS,
      preallocate:
        options.preallocateBytes ??
        (options.dicomPort === undefined ? DEFAULT_PREALLOCATE_READER : DEFAULT_PREALLOCATE_SITE)
    })
    cleanups.push(closeArchive)

    const registry = new MembershipRegistry(member.trust, member.certificate, db)
    await registry.load()
    await takePendingRevocations(member.paths, registry, log)

    const penalties = new PeerPenalties()
    const host: RadmeshHost = await createHost({
      identity: member.identity,
      registry,
      penalties,
      listen: listen.map(String),
      announce: parseMultiaddrs(options.announce ?? [], '--announce').map(String),
      mdns: options.mdns ?? true,
      ...(options.relay === undefined ? {} : { relay: options.relay }),
      reserve: relayVia.length > 0,
      agentName: member.certificate.name,
      log
    })
    const revocations = new RevocationSpreader(host, registry, penalties, log)
    try {
      await host.start()
    } catch (error) {
      await Promise.resolve(host.stop()).catch(() => {})
      if (isAddressInUse(error))
        throw new ListenError(
          'RADMESH_ADDRESS_IN_USE',
          `cannot listen on ${listen.join(', ')}: address already in use; ` +
            'choose other --listen ports or stop the program using them',
          { cause: error }
        )
      throw error
    }
    cleanups.push(async () => {
      await host.stop()
    })
    await revocations.start()
    cleanups.push(async () => {
      await revocations.stop()
    })

    const onPeerConnect = (event: CustomEvent<{ toString(): string }>): void => {
      const peer = event.detail.toString()
      log.info(
        { event: 'member-connected', peer, name: registry.certificateOf(peer)?.name },
        `connected to ${registry.certificateOf(peer)?.name ?? peer}`
      )
    }
    const onPeerDisconnect = (event: CustomEvent<{ toString(): string }>): void => {
      log.info({ event: 'member-disconnected', peer: event.detail.toString() }, 'member disconnected')
    }
    host.addEventListener('peer:connect', onPeerConnect)
    host.addEventListener('peer:disconnect', onPeerDisconnect)
    cleanups.push(() => {
      host.removeEventListener('peer:connect', onPeerConnect)
      host.removeEventListener('peer:disconnect', onPeerDisconnect)
    })

    const exchange = new Exchange({
      libp2p: host,
      identity: member.identity,
      consortiumId: member.trust.info.id,
      registry,
      penalties,
      archive,
      versions: new StudyVersions(db, storageKey),
      audit,
      log
    })
    await exchange.start()
    cleanups.push(async () => {
      await exchange.stop()
    })

    const routing = await loadRouting(member.paths.routing)
    const documents = new Documents(new DocStore(db, storageKey), log)
    cleanups.push(async () => {
      await documents.close()
    })
    const worklist = new Worklist({
      documents,
      identity: member.identity,
      registry,
      index: new CaseIndex(db, storageKey),
      log
    })
    await worklist.start()
    cleanups.push(() => {
      worklist.stop()
    })
    const reports = new Reports({ documents, identity: member.identity, worklist, audit, log })
    await reports.openLive()
    const workflow = new ReadingWorkflow({
      documents,
      identity: member.identity,
      registry,
      archive,
      exchange,
      audit,
      worklist,
      reports,
      routing,
      log
    })
    workflow.start()
    cleanups.push(() => {
      workflow.stop()
    })
    const critical = new CriticalResults({
      peerId: member.identity.peerId,
      worklist,
      audit,
      settings: routing.critical,
      log
    })
    critical.start()
    cleanups.push(async () => {
      await critical.stop()
    })
    const outbox = new Hl7Outbox(db, storageKey)
    const ris = options.ris ?? (routing.ris === undefined ? undefined : parseHostPort(routing.ris))
    const retry = options.risRetryMs === undefined ? {} : { retryMs: options.risRetryMs }
    const me = member.identity.peerId
    const hl7 = ris === undefined ? undefined : new Hl7Sender({ outbox, ris, audit, peerId: me, log, ...retry })
    if (hl7 !== undefined) {
      await hl7.start()
      cleanups.push(async () => {
        await hl7.stop()
      })
    }
    const delivery = new ReportDelivery({
      archive,
      documents,
      reports,
      worklist,
      identity: member.identity,
      log,
      outbox,
      ...(hl7 === undefined ? {} : { hl7 })
    })
    delivery.start()
    cleanups.push(async () => {
      delivery.stop()
      await delivery.settled()
    })
    const inspector = new UpdateInspector()
    cleanups.push(async () => {
      await inspector.close()
    })
    const presence = new Presence({ documents, me: member.identity.peerId, log })
    const policy = workflow.syncPolicy()
    const sync = new SyncService({
      libp2p: host,
      registry,
      penalties,
      documents,
      inspector,
      policy,
      presence,
      log,
      ...(options.resyncIntervalMs === undefined ? {} : { resyncIntervalMs: options.resyncIntervalMs })
    })
    await sync.start()
    cleanups.push(async () => {
      await sync.stop()
    })
    cleanups.push(async () => {
      presence.stop()
    })

    const redialer = new Redialer(host, registry, log)
    redialer.start(peers)
    cleanups.push(() => {
      redialer.stop()
    })
    // Links to members this node shares nothing with are let go of (the members document aside: it spreads
    // through the others).
    const worksWith = (peer: string): boolean =>
      policy.sharedWith(peer).length > 1 || relayPeers(host, host.services.relay).has(peer)
    const pruner = new ConnectionPruner({ libp2p: host, redialer, worksWith, log })
    pruner.start()
    cleanups.push(() => {
      pruner.stop()
    })

    const enforcer = new MembershipEnforcer(host, registry, penalties, log)
    penalties.setBanHandler((peer, reasons) => {
      enforcer.disconnect(peer, `banned for ${BAN_MS / 60_000} minutes after bad data (${JSON.stringify(reasons)})`)
    })
    enforcer.start()
    cleanups.push(() => {
      enforcer.stop()
    })

    const connectedMembers = (): ConnectedMember[] => linksOf(host, registry)

    const sessions = new Sessions(apiToken, options.sessionIdleMs)
    const aeTitle = options.aeTitle ?? DEFAULT_AE_TITLE
    let dicomPort: number | undefined
    if (options.dicomPort !== undefined) {
      try {
        const allowedCallers = [
          ...(options.dicomLimits?.allowedCallers ?? []),
          ...(await loadAllowedCallers(member.paths.home))
        ]
        const peers = [...(await loadDicomPeers(member.paths.home)), ...(options.dicomPeers ?? [])]
        const destinations = new Map(peers.map(peer => [peer.aeTitle, peer]))
        const scp = await startDicomScp({
          ...options.dicomLimits,
          allowedCallers,
          port: options.dicomPort,
          host: http.host === '127.0.0.1' ? '0.0.0.0' : http.host,
          aeTitle,
          log,
          openDataset: header => openNetworkDataset(archive, header),
          onStore: async request => await storeFromNetwork(archive, request),
          queryRetrieve: new DimseQuery({ archive, audit, destinations })
        })
        cleanups.push(async () => {
          await scp.stop()
        })
        dicomPort = scp.port
      } catch (error) {
        if (isAddressInUse(error))
          throw new ListenError(
            'RADMESH_ADDRESS_IN_USE',
            `cannot listen for DICOM on port ${options.dicomPort}: address already in use; choose another --dicom port`,
            { cause: error }
          )
        throw error
      }
    }

    const services: NodeServices = {
      peerId: member.identity.peerId,
      certificate: member.certificate,
      host,
      registry,
      revocations,
      archive,
      exchange,
      worklist,
      reports,
      documents,
      sync,
      presence,
      workflow,
      delivery,
      audit,
      connectedMembers
    }
    const live = new LiveReports({ reports, worklist, documents, presence, sync })
    const access = new StudyAccess({ archive, audit })
    const deidMappings = new DeidMappings(db, storageKey)
    const self = { peerId: member.identity.peerId, certificate: member.certificate }
    const app: FastifyInstance = await createHttpServer(
      { ...services, self, live, access, deidMappings, critical },
      sessions,
      log,
      options.corsOrigins ?? []
    )
    try {
      await app.listen({ host: http.host, port: http.port })
    } catch (error) {
      await app.close().catch(() => {})
      if (isAddressInUse(error))
        throw new ListenError(
          'RADMESH_ADDRESS_IN_USE',
          `cannot serve HTTP on ${http.host}:${http.port}: address already in use; choose another --http port`,
          { cause: error }
        )
      throw error
    }
    cleanups.push(async () => {
      await app.close()
    })
    const address = app.server.address()
    const port = typeof address === 'object' && address !== null ? address.port : http.port
    const httpUrl = `http://${http.host.includes(':') ? `[${http.host}]` : http.host}:${port}`

    const listenAddrs = (): string[] => host.getMultiaddrs().map(String)
    await writeFileAtomic(
      member.paths.running,
      toJsonText({
        pid: process.pid,
        peerId: member.identity.peerId,
        http: httpUrl,
        listen: listenAddrs(),
        startedAt: new Date().toISOString()
      })
    )
    log.info({ event: 'node-started', listen: listenAddrs(), http: httpUrl }, 'node started')

    return {
      ...services,
      member,
      log,
      httpUrl,
      dicomPort,
      aeTitle,
      listenAddrs,
      signInUrl: () => `${httpUrl}/signin/${sessions.issueSignInCode()}`,
      stop
    }
  } catch (error) {
    await stop()
    throw error
  }
}

/** Revocations the administrator handed over while this node was stopped (`revoke --home`). */
async function takePendingRevocations(paths: HomePaths, registry: MembershipRegistry, log: Logger): Promise<void> {
  let list: unknown
  try {
    list = JSON.parse(await fs.readFile(paths.pendingRevocations, 'utf8'))
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return
    throw new RadmeshError(
      'RADMESH_HOME_CORRUPT',
      `${paths.pendingRevocations} is damaged (${(error as Error).message}); ` +
        'ask the administrator for the revocation again'
    )
  }
  const revocations = (Array.isArray(list) ? list : []).flatMap(item => {
    try {
      return [decodeRevocation(item)]
    } catch {
      return []
    }
  })
  const { added, invalid } = await registry.addRevocations(revocations)
  log.info({ event: 'pending-revocations', added: added.length, invalid }, `took ${added.length} pending revocation(s)`)
  await fs.rm(paths.pendingRevocations)
}

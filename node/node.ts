/**
 * `createNode()`: the one place where a radmesh node is wired together and started, in order:
 * HOME (identity, certificate) -> database -> archive -> membership registry -> libp2p host (handshake,
 * gater) -> revocation spreading -> address book -> exchange -> documents, worklist, reports, workflow, sync ->
 * redial -> DICOM -> HTTP. `stop()` undoes it in reverse.
 */
import { promises as fs } from 'node:fs'
import { ListenError } from './errors.ts'
import { toJsonText, writeFileAtomic } from './files.ts'
import { Sessions } from './http/auth.ts'
import { DeidMappings } from './deid/mappings.ts'
import type { ConnectedMember } from './http/services.ts'
import type { MemberCertificate } from '../protocol/membership/index.ts'
import type { AuditLog } from './audit/log.ts'
import { StudyAccess } from './archive/access.ts'
import type { Archive } from './archive/archive.ts'
import { LiveReports } from './reports/live-report.ts'
import { loadMember, type Member } from './identity/member.ts'
import { createLogger, type Logger } from './log.ts'
import { MembershipRegistry } from './membership/registry.ts'
import { RevocationSpreader } from './membership/revocation-spread.ts'
import { AddressBook } from './p2p/address-book.ts'
import { AddressSpreader, dialableAddrs } from './p2p/address-spread.ts'
import { DirectUpgrader } from './p2p/direct-upgrade.ts'
import { ReachWatch } from './p2p/reach.ts'
import type { Reach } from '../protocol/api/peers.ts'
import type { PeerId } from '@libp2p/interface'
import type { AddressRecord } from '../protocol/membership/index.ts'
import { createHost, type RadmeshHost } from './p2p/host.ts'
import { connectedMembers as linksOf, logMemberLinks } from './p2p/links.ts'
import { relayPeers, reservationsWanted } from './p2p/relay.ts'
import { BAN_MS, PeerPenalties } from './p2p/penalties.ts'
import { MembershipEnforcer } from './membership/enforcer.ts'
import { DEFAULT_PREALLOCATE_READER, DEFAULT_PREALLOCATE_SITE, openArchive, StorageKey } from './archive/index.ts'
import { Exchange, StudyVersions } from './exchange/index.ts'
import { ConnectionPruner } from './p2p/prune.ts'
import { Redialer } from './p2p/redial.ts'
import { STUN_PORT, startStunServer } from './p2p/stun.ts'
import { ReportDelivery } from './reports/delivery.ts'
import { Hl7Outbox, Hl7Sender } from './reports/hl7/index.ts'
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
import { SecondOpinions } from './workflow/second-opinions.ts'
import { CasePriorsService, DEFAULT_PRIOR_RETRY } from './workflow/priors.ts'
import { Worklist } from './worklist/worklist.ts'
import { openDatabase, type Database } from './store/database.ts'
import { startDicom } from './node-dicom.ts'
import { serveHttp } from './node-http.ts'
import {
  DEFAULT_AE_TITLE,
  DEFAULT_HTTP,
  DEFAULT_LISTEN,
  DEFAULT_STABLE_AFTER_MS,
  ensureApiToken,
  isAddressInUse,
  type NodeOptions,
  parseHostPort,
  parseMultiaddrs,
  takePendingRevocations
} from './node-options.ts'

export {
  DEFAULT_AE_TITLE,
  DEFAULT_HTTP,
  DEFAULT_LISTEN,
  DEFAULT_STABLE_AFTER_MS,
  ensureApiToken,
  type NodeOptions,
  parseHostPort,
  parseMultiaddrs
} from './node-options.ts'

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
  reach(): Reach
}

export interface RunningNode extends NodeServices {
  member: Member
  log: Logger
  httpUrl: string
  dicomPort: number | undefined
  aeTitle: string
  listenAddrs(): string[]
  signInUrl(): string
  /** Stops every part in reverse order of start; resolves once all are closed and the log is written. */
  stop(): Promise<void>
}

export async function createNode(options: NodeOptions): Promise<RunningNode> {
  const member = await loadMember(options.home)
  const listen = parseMultiaddrs(options.listen ?? DEFAULT_LISTEN, '--listen')
  const relayVia = parseMultiaddrs(options.relayVia ?? [], '--relay-via')
  const peers = [...parseMultiaddrs(options.peers ?? [], '--peer'), ...relayVia]
  const http = parseHostPort(options.http ?? DEFAULT_HTTP)
  const apiToken = await ensureApiToken(member.paths)
  const { log, flushed: logFlushed } = createLogger(member.paths.log, {
    peerId: member.identity.peerId,
    name: member.certificate.name
  })

  const cleanups: Array<() => Promise<void> | void> = []
  const stop = async (): Promise<void> => {
    for (const cleanup of cleanups.reverse())
      await Promise.resolve(cleanup()).catch(error => log.error({ err: error }, 'stop step failed'))
    cleanups.length = 0
    await fs.rm(member.paths.running, { force: true })
    await logFlushed()
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
    const reservations = reservationsWanted({
      ...(options.relayReservations === undefined ? {} : { explicit: options.relayReservations }),
      serving: options.relay !== undefined,
      announced: (options.announce ?? []).length > 0,
      listen: listen.map(String),
      relayVia: relayVia.length
    })
    const host: RadmeshHost = await createHost({
      identity: member.identity,
      registry,
      penalties,
      listen: listen.map(String),
      announce: parseMultiaddrs(options.announce ?? [], '--announce').map(String),
      mdns: options.mdns ?? true,
      ...(options.relay === undefined ? {} : { relay: options.relay }),
      reservations,
      upnp: options.upnp === true,
      webrtc: options.webrtc === true,
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
    if (options.webrtc === true && options.relay !== undefined) {
      // A relay member tells the members behind NAT their public address and port (WebRTC hole punching).
      try {
        const stun = await startStunServer('0.0.0.0', STUN_PORT)
        cleanups.push(async () => {
          await stun.close()
        })
      } catch (error) {
        log.warn({ event: 'stun-unavailable', err: error }, `no STUN on UDP ${STUN_PORT}: ${(error as Error).message}`)
      }
    }
    await revocations.start()
    cleanups.push(async () => {
      await revocations.stop()
    })
    const addressBook = new AddressBook(registry, member.identity, db)
    await addressBook.load()
    const redialer = new Redialer(host, registry, log)
    const upgrader = new DirectUpgrader(host, addressBook, log)
    const learnt = (peer: PeerId, record: AddressRecord): void => {
      redialer.learnt(peer, dialableAddrs(record))
      upgrader.learnt(peer)
    }
    const addresses = new AddressSpreader(host, addressBook, penalties, log, learnt, {
      listenAddrs: (options.announce ?? []).length === 0,
      storing: peer => {
        redialer.storingRecord(peer)
      }
    })
    await addresses.start()
    upgrader.start()
    const reach = new ReachWatch(host, registry, addressBook, reservations)
    reach.start()
    cleanups.push(async () => {
      reach.stop()
      upgrader.stop()
      await addresses.stop()
      addressBook.close()
    })

    cleanups.push(logMemberLinks(host, registry, log))

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
    const aeTitle = options.aeTitle ?? DEFAULT_AE_TITLE
    const priors = new CasePriorsService({
      home: member.paths.home,
      pacs: options.pacs ?? routing.pacs,
      rule: routing.priors,
      aeTitle,
      archive,
      exchange,
      worklist,
      identity: member.identity,
      registry,
      onDuty: (peerId: string): boolean => workflow.onDuty(peerId),
      audit,
      log,
      ...(options.pacsRetryMs === undefined ? {} : { retry: { ...DEFAULT_PRIOR_RETRY, firstMs: options.pacsRetryMs } })
    })
    const deidMappings = new DeidMappings(db, storageKey)
    const workflow = new ReadingWorkflow({
      isPrior: (studyUid: string): boolean => priors.isPrior(studyUid),
      documents,
      identity: member.identity,
      registry,
      archive,
      exchange,
      audit,
      worklist,
      reports,
      routing,
      copies: deidMappings,
      log
    })
    workflow.start()
    cleanups.push(() => {
      workflow.stop()
    })
    const secondOpinions = new SecondOpinions({
      peerId: member.identity.peerId,
      mappings: deidMappings,
      reports,
      worklist,
      documents,
      audit,
      log
    })
    secondOpinions.start()
    cleanups.push(async () => {
      secondOpinions.stop()
      await secondOpinions.settled()
    })
    await priors.start()
    cleanups.push(() => {
      priors.stop()
    })
    const critical = new CriticalResults({
      peerId: member.identity.peerId,
      worklist,
      audit,
      settings: routing.critical,
      originalCaseOf: copyCaseId => secondOpinions.originalCaseOf(copyCaseId),
      log
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
    // With a RIS, a critical result goes there too (hl7/critical.ts), through the reports' outbox.
    critical.addSink(async notice => {
      await delivery.criticalNotice(notice.critical, notice.step)
    })
    critical.start()
    cleanups.push(async () => {
      await critical.stop()
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

    redialer.start(peers, addressBook.members())
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
    let dicomPort: number | undefined
    if (options.dicomPort !== undefined) {
      const scp = await startDicom(options, options.dicomPort, {
        home: member.paths.home,
        host: http.host,
        aeTitle,
        archive,
        audit,
        log
      })
      cleanups.push(async () => {
        await scp.stop()
      })
      dicomPort = scp.port
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
      connectedMembers,
      reach: () => reach.summary()
    }
    const live = new LiveReports({ reports, worklist, documents, presence, sync })
    const access = new StudyAccess({ archive, audit })
    const self = { peerId: member.identity.peerId, certificate: member.certificate }
    const { app, httpUrl } = await serveHttp(
      { ...services, self, live, access, deidMappings, priors, critical, secondOpinions },
      sessions,
      log,
      options.corsOrigins ?? [],
      http
    )
    cleanups.push(async () => {
      await app.close()
    })

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

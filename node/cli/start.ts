/** `radmesh start`: runs the node until SIGINT/SIGTERM. */
import { flushCompileCache } from 'node:module'
import { tuneHeap } from '../heap.ts'
import type { NodeOptions } from '../node.ts'
import { ListenError, UsageError } from '../errors.ts'
import { duration, list, optional, parse, required } from './args.ts'
import { parseAllowAe, parseDestination, parseDicomPeers } from '../dicom/peers.ts'
import type { DicomLimits } from '../dicom/scp.ts'

const START =
  'radmesh start --home HOME [--listen MULTIADDR]… [--announce MULTIADDR]… [--peer MULTIADDR]… ' +
  '[--http HOST:PORT] [--dicom PORT] [--ae TITLE] [--max-associations 16] [--pdu-timeout 60s] ' +
  '[--allow-ae AE@HOST]… [--dicom-peer AE=HOST:PORT]… [--pacs AE@HOST:PORT [--pacs-retry 5s]] ' +
  '[--stable-after 30s] [--session-idle 15m] [--resync 5s] [--cors ORIGIN]… ' +
  '[--preallocate MIB] [--ris HOST:PORT] [--ris-retry 5s] [--no-mdns] ' +
  '[--relay [--relay-data-limit SIZE] [--relay-duration-limit 1h]] [--relay-via MULTIADDR]… ' +
  '[--relay-reservations N] [--upnp] [--webrtc]'

export async function startCommand(argv: string[], print: (line: string) => void): Promise<void> {
  tuneHeap()
  const { values } = parse(
    argv,
    {
      home: { type: 'string' },
      listen: { type: 'string', multiple: true },
      announce: { type: 'string', multiple: true },
      peer: { type: 'string', multiple: true },
      http: { type: 'string' },
      dicom: { type: 'string' },
      ae: { type: 'string' },
      'max-associations': { type: 'string' },
      'pdu-timeout': { type: 'string' },
      'allow-ae': { type: 'string', multiple: true },
      'dicom-peer': { type: 'string', multiple: true },
      pacs: { type: 'string' },
      'pacs-retry': { type: 'string' },
      'no-mdns': { type: 'boolean' },
      relay: { type: 'boolean' },
      'relay-via': { type: 'string', multiple: true },
      'relay-data-limit': { type: 'string' },
      'relay-duration-limit': { type: 'string' },
      'relay-reservations': { type: 'string' },
      upnp: { type: 'boolean' },
      webrtc: { type: 'boolean' },
      'session-idle': { type: 'string' },
      'stable-after': { type: 'string' },
      resync: { type: 'string' },
      cors: { type: 'string', multiple: true },
      preallocate: { type: 'string' },
      ris: { type: 'string' },
      'ris-retry': { type: 'string' }
    },
    START
  )
  const listen = list(values, 'listen')
  const http = optional(values, 'http')
  const dicom = optional(values, 'dicom')
  const ae = optional(values, 'ae')
  const stableAfter = optional(values, 'stable-after')
  const sessionIdle = optional(values, 'session-idle')
  const resync = optional(values, 'resync')
  const resyncIntervalMs = resync === undefined ? undefined : duration(resync, '--resync')
  if (resyncIntervalMs !== undefined && resyncIntervalMs > 3_600_000)
    throw new UsageError(
      `--resync ${resync}: at most 1h; changes go out at once, the resync only catches what a dropped link missed`
    )
  const preallocate = optional(values, 'preallocate')
  const preallocateMib = preallocate === undefined ? undefined : Number(preallocate)
  if (
    preallocateMib !== undefined &&
    (!Number.isInteger(preallocateMib) || preallocateMib < 0 || preallocateMib > 4096)
  )
    throw new UsageError(
      `--preallocate ${preallocate}: give the MiB of pack space to keep zero-filled ahead of writes, ` +
        '0 to 4096 (0: none)'
    )
  const dicomPort = dicom === undefined ? undefined : Number(dicom)
  if (dicomPort !== undefined && (!Number.isInteger(dicomPort) || dicomPort < 0 || dicomPort > 65535))
    throw new UsageError(`--dicom ${dicom}: give a TCP port number, e.g. 11112`)
  if (ae !== undefined && !/^[\x20-\x5b\x5d-\x7e]{1,16}$/.test(ae))
    throw new UsageError(`--ae ${ae}: an AE title is 1 to 16 printable characters, no backslash`)
  const dicomLimits = dicomLimitsOf(values, dicomPort !== undefined)
  const dicomPeers = parseDicomPeers(list(values, 'dicom-peer'))
  if (dicomPort === undefined && dicomPeers.length > 0) {
    throw new UsageError('--dicom-peer: C-MOVE destinations of the DICOM port, which only listens with --dicom PORT')
  }
  const pacs = pacsOf(optional(values, 'pacs'))
  const pacsRetry = optional(values, 'pacs-retry')
  const pacsRetryMs = pacsRetry === undefined ? undefined : duration(pacsRetry, '--pacs-retry')
  if (pacsRetryMs !== undefined && (pacsRetryMs < 100 || pacsRetryMs > 3_600_000)) {
    throw new UsageError(`--pacs-retry ${pacsRetry}: from 100ms to 1h (default 5s, doubling to 5m)`)
  }
  const ris = risOf(optional(values, 'ris'))
  const risRetry = optional(values, 'ris-retry')
  const risRetryMs = risRetry === undefined ? undefined : duration(risRetry, '--ris-retry')
  if (risRetryMs !== undefined && risRetryMs > 3_600_000) {
    throw new UsageError(`--ris-retry ${risRetry}: at most 1h (default 5s, doubling to 5m)`)
  }
  const corsOrigins = list(values, 'cors').map(origin => {
    if (!/^https?:\/\/[^/\s]+\/?$/.test(origin))
      throw new UsageError(`--cors ${origin}: give an origin, e.g. http://localhost:3000`)
    return origin
  })
  const home = required(values, 'home', START)
  // The node's code (libp2p, the archive, the HTTP server: about a second to load) only once the arguments hold.
  const { createNode } = await import('../node.ts')
  const node = await createNode({
    home,
    ...(listen.length > 0 ? { listen } : {}),
    announce: list(values, 'announce'),
    peers: list(values, 'peer'),
    ...relayOf(values),
    ...reservationsOf(optional(values, 'relay-reservations')),
    upnp: values['upnp'] === true,
    webrtc: values['webrtc'] === true,
    ...(http === undefined ? {} : { http }),
    mdns: values['no-mdns'] !== true,
    ...(dicomPort === undefined ? {} : { dicomPort }),
    ...(ae === undefined ? {} : { aeTitle: ae.trim() }),
    dicomLimits,
    dicomPeers,
    ...(stableAfter === undefined ? {} : { stableAfterMs: duration(stableAfter, '--stable-after') }),
    ...(sessionIdle === undefined ? {} : { sessionIdleMs: duration(sessionIdle, '--session-idle') }),
    ...(resyncIntervalMs === undefined ? {} : { resyncIntervalMs }),
    ...(preallocateMib === undefined ? {} : { preallocateBytes: preallocateMib * 1024 * 1024 }),
    ...(pacs === undefined ? {} : { pacs }),
    ...(pacsRetryMs === undefined ? {} : { pacsRetryMs }),
    ...(ris === undefined ? {} : { ris }),
    ...(risRetryMs === undefined ? {} : { risRetryMs }),
    corsOrigins
  }).catch((error: unknown) => {
    throw addressNotHere(error) ?? error
  })
  // The signals are handled before the node says it is up: whoever waits for "viewer:" may stop it at once.
  const stopped = new Promise<void>(resolve => {
    // Ctrl-C in a terminal reaches the whole process group, so a node run by a script (the demo) gets SIGINT
    // and then the script's SIGTERM: the second signal must not start a second stop.
    let stopping = false
    const shutdown = (signal: string): void => {
      if (stopping) return
      stopping = true
      node.log.info({ event: 'node-stopping', signal }, 'stopping')
      void node.stop().finally(() => {
        // Everything of the node is closed and its log written: the process ends once this command has returned,
        // without waiting for timers libraries leave behind (libp2p's address manager keeps a 1 s one after stop).
        setImmediate(() => process.exit())
        resolve()
      })
    }
    process.once('SIGINT', () => {
      shutdown('SIGINT')
    })
    process.once('SIGTERM', () => {
      shutdown('SIGTERM')
    })
  })
  print(`radmesh node "${node.certificate.name}" (${node.certificate.role}) peer ${node.peerId}`)
  for (const addr of node.listenAddrs()) print(`listening: ${addr}`)
  print(`http: ${node.httpUrl}`)
  if (node.dicomPort !== undefined) print(`dicom: ${node.aeTitle}@${node.dicomPort}`)
  print(`viewer: ${node.signInUrl()}`)
  // The code loaded to start is written to Node's compile cache now (bin/radmesh turns it on): Node writes it at a
  // normal exit, and a node may end by SIGKILL or a power cut.
  flushCompileCache?.()
  await stopped
}

/** --relay (with its limits) and --relay-via, checked: a relay for members is unlimited unless limits are given. */
function relayOf(values: Record<string, unknown>): Pick<NodeOptions, 'relay' | 'relayVia'> {
  const data = optional(values, 'relay-data-limit')
  const time = optional(values, 'relay-duration-limit')
  if (values['relay'] !== true && (data !== undefined || time !== undefined)) {
    throw new UsageError(
      '--relay-data-limit, --relay-duration-limit: limits of the relay this node serves with ' + '--relay'
    )
  }
  const relayVia = list(values, 'relay-via')
  for (const addr of relayVia) {
    if (!/\/p2p\/\w+$/.test(addr) || addr.includes('/p2p-circuit')) {
      throw new UsageError(
        `--relay-via ${addr}: give the relay member's address with its peer id, ` +
          'e.g. /ip4/203.0.113.7/tcp/7400/p2p/12D3…'
      )
    }
  }
  if (values['relay'] !== true) return { relayVia }
  const size = /^(\d+)(B|KiB|MiB|GiB|TiB)$/.exec(data ?? '')
  if (data !== undefined && size === null) {
    throw new UsageError(`--relay-data-limit ${data}: write a size, e.g. 4GiB, 500MiB`)
  }
  const unit = { B: 0n, KiB: 10n, MiB: 20n, GiB: 30n, TiB: 40n }[(size?.[2] as 'B') ?? 'B']
  const dataLimit = size === null ? undefined : BigInt(size[1] as string) << unit
  if (dataLimit === 0n) throw new UsageError('--relay-data-limit must be more than zero (leave it out for no limit)')
  const durationLimitMs = time === undefined ? undefined : duration(time, '--relay-duration-limit')
  if (durationLimitMs !== undefined && durationLimitMs > 2 ** 31 - 1) {
    throw new UsageError(`--relay-duration-limit ${time}: at most 24d`)
  }
  const relay = {
    ...(dataLimit === undefined ? {} : { dataLimit }),
    ...(durationLimitMs === undefined ? {} : { durationLimitMs })
  }
  return { relay, relayVia }
}

/** --relay-reservations N: how many member relays to keep a reservation on (0 to 8). */
function reservationsOf(value: string | undefined): Pick<NodeOptions, 'relayReservations'> {
  if (value === undefined) return {}
  const n = Number(value)
  if (!/^\d+$/.test(value) || n > 8)
    throw new UsageError(
      `--relay-reservations ${value}: give how many member relays to hold a reservation on, 0 to 8 ` +
        '(0: none; by default 2 when every address of this node is private, else none)'
    )
  return { relayReservations: n }
}

/** --pacs AE@HOST:PORT: the site's PACS, queried (C-FIND) and retrieved from (C-GET) for each case's priors. */
function pacsOf(value: string | undefined): ReturnType<typeof parseDestination> | undefined {
  if (value === undefined) return undefined
  try {
    return parseDestination(value)
  } catch (error) {
    const why = (error as Error).message.replace(/; write AE=HOST:PORT.*$/, '')
    throw new UsageError(`--pacs ${why}; write AE@HOST:PORT, e.g. PACS@pacs.hospital.local:104`)
  }
}

/** --ris HOST:PORT: the site's RIS, which takes reports as HL7 ORU^R01 over MLLP. */
function risOf(value: string | undefined): { host: string; port: number } | undefined {
  if (value === undefined) return undefined
  const match = /^([^\s:]+|\[[0-9a-fA-F:]+\]):(\d{1,5})$/.exec(value)
  const port = Number(match?.[2])
  if (match?.[1] === undefined || !(port > 0 && port <= 65535)) {
    throw new UsageError(`--ris ${value}: write the RIS's HL7 listener as HOST:PORT, e.g. ris.hospital.example:2575`)
  }
  return { host: match[1].replace(/^\[(.*)\]$/, '$1'), port }
}

/** --max-associations, --pdu-timeout and --allow-ae (the DICOM port's limits: node/dicom/scp.ts), checked. */
function dicomLimitsOf(values: Record<string, unknown>, dicom: boolean): Partial<DicomLimits> {
  const maxAssociations = optional(values, 'max-associations')
  const pduTimeout = optional(values, 'pdu-timeout')
  const allowAe = list(values, 'allow-ae')
  const given = [
    maxAssociations === undefined ? '' : '--max-associations',
    pduTimeout === undefined ? '' : '--pdu-timeout',
    allowAe.length === 0 ? '' : '--allow-ae'
  ].filter(flag => flag !== '')
  if (!dicom && given.length > 0) {
    throw new UsageError(`${given.join(', ')}: limits of the DICOM port, which only listens with --dicom PORT`)
  }
  const limits: Partial<DicomLimits> = {}
  if (maxAssociations !== undefined) {
    const n = Number(maxAssociations)
    if (!/^\d+$/.test(maxAssociations) || n < 1 || n > 1000) {
      throw new UsageError(`--max-associations ${maxAssociations}: give 1 to 1000 associations at once (default 16)`)
    }
    limits.maxAssociations = n
  }
  if (pduTimeout !== undefined) {
    const ms = duration(pduTimeout, '--pdu-timeout')
    if (ms > 3_600_000) throw new UsageError(`--pdu-timeout ${pduTimeout}: at most 1h (default 60s)`)
    limits.pduTimeoutMs = ms
  }
  if (allowAe.length > 0) limits.allowedCallers = parseAllowAe(allowAe)
  return limits
}

/**
 * A listen address this machine does not have (EADDRNOTAVAIL), said as a mistake on the command line
 * rather than as an internal error: libp2p names the multiaddr in its message, the HTTP server in the error.
 */
function addressNotHere(error: unknown): ListenError | UsageError | undefined {
  const { code, message, address, port } = error as { code?: string; message?: string; address?: string; port?: number }
  if (!/EADDRNOTAVAIL/.test(`${code ?? ''} ${message ?? ''}`)) return undefined
  const hint = 'this machine has no such address; give one of its own (127.0.0.1, or 0.0.0.0 for all)'
  const multiaddr = /(\/ip[46]\/\S+?):? Error: listen EADDRNOTAVAIL/.exec(message ?? '')?.[1]
  if (multiaddr !== undefined) return new ListenError('RADMESH_BAD_MULTIADDR', `cannot listen on ${multiaddr}: ${hint}`)
  if (address === undefined) return undefined
  return new UsageError(`cannot listen on ${address}${port === undefined ? '' : `:${port}`}: ${hint}`)
}

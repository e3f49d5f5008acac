/** `radmesh start`: runs the node until SIGINT/SIGTERM. */
import { tuneHeap } from '../heap.ts'
import { createNode } from '../node.ts'
import { ListenError, UsageError } from '../errors.ts'
import { duration, list, optional, parse, required } from './args.ts'
import { parseAllowAe, parseDicomPeers } from '../dicom/peers.ts'
import type { DicomLimits } from '../dicom/scp.ts'

const START = 'radmesh start --home HOME [--listen MULTIADDR]… [--announce MULTIADDR]… [--peer MULTIADDR]… ' +
  '[--http HOST:PORT] [--dicom PORT] [--ae TITLE] [--max-associations 16] [--pdu-timeout 60s] ' +
  '[--allow-ae AE@HOST]… [--dicom-peer AE=HOST:PORT]… ' +
  '[--stable-after 30s] [--session-idle 15m] [--resync 5s] [--cors ORIGIN]… ' +
  '[--preallocate MIB] [--no-mdns]'

export async function startCommand (argv: string[], print: (line: string) => void): Promise<void> {
  tuneHeap()
  const { values } = parse(argv, {
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
    'no-mdns': { type: 'boolean' },
    'session-idle': { type: 'string' },
    'stable-after': { type: 'string' },
    resync: { type: 'string' },
    cors: { type: 'string', multiple: true },
    preallocate: { type: 'string' }
  }, START)
  const listen = list(values, 'listen')
  const http = optional(values, 'http')
  const dicom = optional(values, 'dicom')
  const ae = optional(values, 'ae')
  const stableAfter = optional(values, 'stable-after')
  const sessionIdle = optional(values, 'session-idle')
  const resync = optional(values, 'resync')
  const resyncIntervalMs = resync === undefined ? undefined : duration(resync, '--resync')
  if (resyncIntervalMs !== undefined && resyncIntervalMs > 3_600_000) throw new UsageError(`--resync ${resync}: at most 1h; changes go out at once, the resync only catches what a dropped link missed`)
  const preallocate = optional(values, 'preallocate')
  const preallocateMib = preallocate === undefined ? undefined : Number(preallocate)
  if (preallocateMib !== undefined && (!Number.isInteger(preallocateMib) || preallocateMib < 0 || preallocateMib > 4096)) throw new UsageError(`--preallocate ${preallocate}: give the MiB of pack space to keep zero-filled ahead of writes, 0 to 4096 (0: none)`)
  const dicomPort = dicom === undefined ? undefined : Number(dicom)
  if (dicomPort !== undefined && (!Number.isInteger(dicomPort) || dicomPort < 0 || dicomPort > 65535)) throw new UsageError(`--dicom ${dicom}: give a TCP port number, e.g. 11112`)
  if (ae !== undefined && !/^[\x20-\x5b\x5d-\x7e]{1,16}$/.test(ae)) throw new UsageError(`--ae ${ae}: an AE title is 1 to 16 printable characters, no backslash`)
  const dicomLimits = dicomLimitsOf(values, dicomPort !== undefined)
  const dicomPeers = parseDicomPeers(list(values, 'dicom-peer'))
  if (dicomPort === undefined && dicomPeers.length > 0) {
    throw new UsageError('--dicom-peer: C-MOVE destinations of the DICOM port, which only listens with --dicom PORT')
  }
  const node = await createNode({
    home: required(values, 'home', START),
    ...(listen.length > 0 ? { listen } : {}),
    announce: list(values, 'announce'),
    peers: list(values, 'peer'),
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
    corsOrigins: list(values, 'cors').map(origin => {
      if (!/^https?:\/\/[^/\s]+\/?$/.test(origin)) throw new UsageError(`--cors ${origin}: give an origin, e.g. http://localhost:3000`)
      return origin
    })
  }).catch((error: unknown) => { throw addressNotHere(error) ?? error })
  print(`radmesh node "${node.certificate.name}" (${node.certificate.role}) peer ${node.peerId}`)
  for (const addr of node.listenAddrs()) print(`listening: ${addr}`)
  print(`http: ${node.httpUrl}`)
  if (node.dicomPort !== undefined) print(`dicom: ${node.aeTitle}@${node.dicomPort}`)
  print(`viewer: ${node.signInUrl()}`)

  await new Promise<void>(resolve => {
    // Ctrl-C in a terminal reaches the whole process group, so a node run by a script (the demo) gets SIGINT
    // and then the script's SIGTERM: the second signal must not start a second stop.
    let stopping = false
    const shutdown = (signal: string): void => {
      if (stopping) return
      stopping = true
      node.log.info({ event: 'node-stopping', signal }, 'stopping')
      void node.stop().finally(resolve)
    }
    process.once('SIGINT', () => { shutdown('SIGINT') })
    process.once('SIGTERM', () => { shutdown('SIGTERM') })
  })
}

/** --max-associations, --pdu-timeout and --allow-ae (the DICOM port's limits: node/dicom/scp.ts), checked. */
function dicomLimitsOf (values: Record<string, unknown>, dicom: boolean): Partial<DicomLimits> {
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
function addressNotHere (error: unknown): ListenError | UsageError | undefined {
  const { code, message, address, port } = error as { code?: string, message?: string, address?: string, port?: number }
  if (!/EADDRNOTAVAIL/.test(`${code ?? ''} ${message ?? ''}`)) return undefined
  const hint = 'this machine has no such address; give one of its own (127.0.0.1, or 0.0.0.0 for all)'
  const multiaddr = /(\/ip[46]\/\S+?):? Error: listen EADDRNOTAVAIL/.exec(message ?? '')?.[1]
  if (multiaddr !== undefined) return new ListenError('RADMESH_BAD_MULTIADDR', `cannot listen on ${multiaddr}: ${hint}`)
  if (address === undefined) return undefined
  return new UsageError(`cannot listen on ${address}${port === undefined ? '' : `:${port}`}: ${hint}`)
}

/**
 * What `createNode()` (node.ts) is started with: its options and their defaults, the parsing of addresses
 * given on the command line, the API token in HOME, and revocations left in HOME while the node was stopped.
 */
import { promises as fs } from 'node:fs'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { decodeRevocation } from '../protocol/membership/index.ts'
import type { DicomLimits } from './dicom/scp.ts'
import type { DicomDestination } from './dicom/peers.ts'
import { ListenError, RadmeshError } from './errors.ts'
import { exists, SECRET_FILE_MODE, writeFileAtomic } from './files.ts'
import { newSecret } from './http/auth.ts'
import type { HomePaths } from './identity/home.ts'
import type { Logger } from './log.ts'
import type { MembershipRegistry } from './membership/registry.ts'
import type { RelayServeOptions } from './p2p/relay.ts'
import type { RisAddress } from './reports/hl7/index.ts'

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
  /** reservations to keep on member relays (`--relay-reservations`; by default see p2p/relay.ts reservationsWanted) */
  relayReservations?: number
  /** ask the home router for port forwarding by UPnP / NAT-PMP (`--upnp`) */
  upnp?: boolean
  /** WebRTC links hole punched through NATs; on a relay, STUN answered on UDP 3478 too (`--webrtc`) */
  webrtc?: boolean
  http?: string
  mdns?: boolean
  sessionIdleMs?: number
  /** how often shared documents are checked against each member's (changes go out at once regardless) */
  resyncIntervalMs?: number
  /** origins allowed to call the DICOMweb routes from a browser (an OHIF served elsewhere) */
  corsOrigins?: string[]
  /** bytes of pack space kept zero-filled ahead of the archive's writes (see archive/pack/writer.ts) */
  preallocateBytes?: number
  /** the site's PACS, queried for each case's priors (wins over `pacs` in routing.json) */
  pacs?: DicomDestination
  /** the first wait after a failed search of the PACS (doubling up to 5 minutes); 5 s unless given */
  pacsRetryMs?: number
  /** the site's RIS for HL7 ORU^R01 over MLLP (wins over `ris` in routing.json); first retry after `risRetryMs` */
  ris?: RisAddress
  risRetryMs?: number
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

/** Whether a listen failed because the address is taken (EADDRINUSE, anywhere in its causes). */
export function isAddressInUse(error: unknown): boolean {
  for (
    let e = error as { code?: string; message?: string; cause?: unknown } | undefined;
    e != null;
    e = e.cause as typeof e
  ) {
    if (e.code === 'EADDRINUSE' || /EADDRINUSE|address already in use/i.test(e.message ?? '')) return true
  }
  return false
}

/** Revocations the administrator handed over while this node was stopped (`revoke --home`). */
export async function takePendingRevocations(
  paths: HomePaths,
  registry: MembershipRegistry,
  log: Logger
): Promise<void> {
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

/**
 * The DICOM peers a site names: who may open an association to the node's DICOM port (`--allow-ae AE@HOST`,
 * repeatable, or "allow" in HOME/dicom-peers.json), and where the node may send (C-MOVE destinations:
 * `--dicom-peer AE=HOST:PORT`, repeatable, or "peers" in the same file; `AE@HOST:PORT` is taken too).
 *
 *   { "allow": ["CT_ROOM1@10.20.0.15", "PACS@pacs.hospital.local", "MODALITIES@10.20.4.0/24"],
 *     "peers": ["WORKSTATION=10.20.0.31:104", "PACS=pacs.hospital.local:11112"] }
 *
 * HOST is an IP address, a subnet in CIDR notation, or a host name (resolved at start and every 5 minutes,
 * all its addresses). With no entry at all, any calling AE title from any address is accepted, as before.
 */
import { promises as fs } from 'node:fs'
import { lookup } from 'node:dns/promises'
import { BlockList, isIP } from 'node:net'
import { join } from 'node:path'
import { HomeError, UsageError } from '../errors.ts'
import type { Logger } from '../log.ts'

export const DICOM_PEERS_FILE = 'dicom-peers.json'
/** Host names of allowed callers are looked up again this often (a modality's DHCP lease may change). */
const RESOLVE_EVERY_MS = 5 * 60_000

/** A calling AE title and the address(es) it must come from. */
export interface DicomCaller {
  aeTitle: string
  host: string
}

const AE_TITLE = /^[\x20-\x5b\x5d-\x7e]{1,16}$/
const LABEL = '[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?'
const HOST_NAME = new RegExp(`^(?=.{1,253}$)${LABEL}(\\.${LABEL})*\\.?$`)

/** An address or subnet as BlockList takes it, or undefined for a host name. */
function addressOf(host: string): { address: string; prefix?: number; family: 'ipv4' | 'ipv6' } | undefined {
  const [address = '', prefix, extra] = host.split('/')
  const family = isIP(address)
  if (family === 0 || extra !== undefined) return undefined
  const type = family === 4 ? 'ipv4' : 'ipv6'
  if (prefix === undefined) return { address, family: type }
  const bits = Number(prefix)
  if (!/^\d{1,3}$/.test(prefix) || bits > (family === 4 ? 32 : 128)) return undefined
  return { address, prefix: bits, family: type }
}

/** `AE@HOST` (the last @ separates them: an AE title may hold one); throws a message saying what is wrong. */
export function parseCaller(text: string): DicomCaller {
  const at = text.lastIndexOf('@')
  const aeTitle = (at < 0 ? '' : text.slice(0, at)).trim()
  const host = (at < 0 ? '' : text.slice(at + 1)).trim().replace(/^\[(.*)\]$/, '$1')
  const example = 'write AE@HOST, e.g. CT_ROOM1@10.20.0.15, PACS@pacs.hospital.local or CT@10.20.4.0/24'
  if (at < 0 || !AE_TITLE.test(aeTitle)) {
    throw new Error(`"${text}": ${example} (an AE title is 1 to 16 printable characters)`)
  }
  if (addressOf(host) === undefined && (host.includes('/') || !HOST_NAME.test(host))) {
    const why = host === '' ? 'no host' : `"${host}" is not an address, subnet or host name`
    throw new Error(`"${text}": ${why}; ${example}`)
  }
  return { aeTitle, host }
}

/** `--allow-ae` values, checked. */
export function parseAllowAe(values: string[]): DicomCaller[] {
  return values.map(value => {
    try {
      return parseCaller(value)
    } catch (error) {
      throw new UsageError(`--allow-ae ${(error as Error).message}`)
    }
  })
}

/** A DICOM node the node connects to: a C-MOVE destination. */
export interface DicomDestination {
  aeTitle: string
  host: string
  port: number
}

/** `AE=HOST:PORT` or `AE@HOST:PORT` (split at the last = or @); throws a message saying what is wrong. */
export function parseDestination(text: string): DicomDestination {
  const at = Math.max(text.lastIndexOf('='), text.lastIndexOf('@'))
  const aeTitle = (at < 0 ? '' : text.slice(0, at)).trim()
  const address = at < 0 ? '' : text.slice(at + 1).trim()
  const colon = address.lastIndexOf(':')
  const host = (colon < 0 ? '' : address.slice(0, colon)).replace(/^\[(.*)\]$/, '$1')
  const port = colon < 0 ? Number.NaN : Number(address.slice(colon + 1))
  const example = 'write AE=HOST:PORT, e.g. WORKSTATION=10.20.0.31:104 or PACS=pacs.hospital.local:11112'
  if (at < 0 || !AE_TITLE.test(aeTitle)) {
    throw new Error(`"${text}": ${example} (an AE title is 1 to 16 printable characters)`)
  }
  if ((isIP(host) === 0 && !HOST_NAME.test(host)) || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`"${text}": "${address}" is not HOST:PORT with a port from 1 to 65535; ${example}`)
  }
  return { aeTitle, host, port }
}

/** `--dicom-peer` values, checked. */
export function parseDicomPeers(values: string[]): DicomDestination[] {
  return values.map(value => {
    try {
      return parseDestination(value)
    } catch (error) {
      throw new UsageError(`--dicom-peer ${(error as Error).message}`)
    }
  })
}

/** One list of HOME/dicom-peers.json ("allow" or "peers"), each entry parsed; none without the file. */
async function loadList<T>(home: string, key: string, parse: (text: string) => T): Promise<T[]> {
  const path = join(home, DICOM_PEERS_FILE)
  let text: string
  try {
    text = await fs.readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw error
  }
  const bad = (why: string): Error => new HomeError('RADMESH_HOME_CORRUPT', `${path}: ${why}; fix it or remove it`)
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw bad('not JSON')
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw bad('must be an object, e.g. { "allow": ["CT_ROOM1@10.20.0.15"], "peers": ["PACS=10.20.0.5:104"] }')
  }
  const list = (value as Record<string, unknown>)[key]
  if (list === undefined) return []
  if (!Array.isArray(list) || list.some(item => typeof item !== 'string')) {
    throw bad(`"${key}" must be a list of ${key === 'allow' ? '"AE@HOST"' : '"AE=HOST:PORT"'} strings`)
  }
  return (list as string[]).map((item, i) => {
    try {
      return parse(item)
    } catch (error) {
      throw bad(`${key}[${i}] ${(error as Error).message}`)
    }
  })
}

/** HOME/dicom-peers.json's allowed callers ("allow"), none without the file. */
export async function loadAllowedCallers(home: string): Promise<DicomCaller[]> {
  return await loadList(home, 'allow', parseCaller)
}

/** HOME/dicom-peers.json's C-MOVE destinations ("peers"), none without the file. */
export async function loadDicomPeers(home: string): Promise<DicomDestination[]> {
  return await loadList(home, 'peers', parseDestination)
}

/**
 * Which calling AE titles may associate, from which addresses. Empty: everyone. `start()` resolves the host
 * names (and again every 5 minutes); until a name resolves, its AE title is refused.
 */
export class CallerAllowList {
  readonly #callers: readonly DicomCaller[]
  readonly #log: Logger | undefined
  /** per AE title, the addresses it may call from */
  #allowed = new Map<string, BlockList>()
  /** the last addresses each host name resolved to */
  #resolved = new Map<string, string[]>()
  #timer: NodeJS.Timeout | undefined

  constructor(callers: readonly DicomCaller[], log?: Logger) {
    this.#callers = callers
    this.#log = log
    this.#allowed = this.#build(new Map())
  }

  get enabled(): boolean {
    return this.#callers.length > 0
  }

  async start(): Promise<void> {
    if (!this.#callers.some(caller => addressOf(caller.host) === undefined)) return
    await this.#resolve()
    this.#timer = setInterval(() => {
      void this.#resolve()
    }, RESOLVE_EVERY_MS)
    this.#timer.unref()
  }

  stop(): void {
    clearInterval(this.#timer)
  }

  /** True when the list is off, or lists `aeTitle` with an address that covers `address`. */
  allows(aeTitle: string, address: string | undefined): boolean {
    if (!this.enabled) return true
    const list = this.#allowed.get(aeTitle)
    if (list === undefined || address === undefined) return false
    const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1]
    if (v4 !== undefined) return list.check(v4, 'ipv4')
    return list.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4')
  }

  async #resolve(): Promise<void> {
    const resolved = new Map<string, string[]>()
    await Promise.all(
      this.#callers
        .filter(caller => addressOf(caller.host) === undefined)
        .map(async ({ host }) => {
          try {
            resolved.set(
              host,
              (await lookup(host, { all: true })).map(entry => entry.address)
            )
          } catch (error) {
            // The addresses it had stay allowed; a name that never resolved allows none.
            const before = this.#resolved.get(host)
            if (before !== undefined) resolved.set(host, before)
            this.#log?.warn(
              { host, err: error, kept: before?.length ?? 0 },
              "an allowed DICOM caller's host name does not resolve"
            )
          }
        })
    )
    this.#resolved = resolved
    this.#allowed = this.#build(resolved)
  }

  #build(resolved: Map<string, string[]>): Map<string, BlockList> {
    const allowed = new Map<string, BlockList>()
    for (const { aeTitle, host } of this.#callers) {
      const list = allowed.get(aeTitle) ?? new BlockList()
      allowed.set(aeTitle, list)
      const literal = addressOf(host)
      const addresses: Array<{ address: string; prefix?: number; family: 'ipv4' | 'ipv6' }> =
        literal === undefined
          ? (resolved.get(host) ?? []).map(address => ({ address, family: isIP(address) === 6 ? 'ipv6' : 'ipv4' }))
          : [literal]
      for (const entry of addresses) {
        if (entry.prefix === undefined) list.addAddress(entry.address, entry.family)
        else list.addSubnet(entry.address, entry.prefix, entry.family)
      }
    }
    return allowed
  }
}

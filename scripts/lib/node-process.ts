/**
 * A radmesh node as its own process (`radmesh start` through the CLI), on loopback ports of its own, for the
 * demo, the benchmarks, the fuzzers and the end-to-end tests; with its HTTP API at hand and ways to stop it.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { childEnv, killChild, ownChild, stopChild } from './children.ts'
import { CLI } from './cli.ts'
import { freePort } from './ports.ts'
import { waitFor } from './wait.ts'

/** How long a node may take to print its viewer line. */
const START_TIMEOUT_MS = 20_000

export interface StartedNode {
  home: string
  peerId: string
  http: string
  token: string
  p2pPort: number
  wsPort: number
  httpPort: number
  viewerUrl: string
  /** the C-STORE SCP port, when started with `dicom` */
  dicomPort: number
  process: ChildProcess
  /** everything the node printed so far, stdout and stderr */
  output: () => string
  api<T = unknown>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }>
  /** a raw request with the node's token: for DICOMweb */
  fetch(path: string, init?: RequestInit): Promise<Response>
  /** SIGTERM, and waits until the process has exited */
  stop(): Promise<void>
  /** SIGKILL, and waits until the process has exited */
  kill(): Promise<void>
}

export interface StartOptions {
  peers?: string[]
  p2pPort?: number
  wsPort?: number
  httpPort?: number
  extraArgs?: string[]
  env?: NodeJS.ProcessEnv
  /** listen for DICOM (C-STORE) on this port, or on a free one with `true` */
  dicom?: boolean | number
  /**
   * MiB of pack space the node keeps zero-filled ahead of its writes (`--preallocate`). Tests start many
   * nodes, so 4 unless given; `null` leaves radmesh's default (256 with --dicom, 64 without), as benchmarks do.
   */
  preallocateMib?: number | null
  /** how long the node may take to print its viewer line (20 s unless given; many nodes on 2 cores take longer) */
  startTimeoutMs?: number
}

/** The node did not print its viewer line: it exited first (`exitCode`), or it took too long (null). */
export class NodeStartError extends Error {
  readonly home: string
  readonly exitCode: number | null
  /** what the node printed, its own error message among it */
  readonly output: string
  constructor(home: string, exitCode: number | null, output: string, timeoutMs = START_TIMEOUT_MS) {
    const what = exitCode === null ? `did not start within ${timeoutMs / 1000} s` : `exited ${exitCode}`
    super(`the node on ${home} ${what}:\n${output.trimEnd()}`)
    this.name = 'NodeStartError'
    this.home = home
    this.exitCode = exitCode
    this.output = output
  }
}

/** Starts `radmesh start` on HOME and resolves once it printed its viewer line. */
export async function startNode(home: string, options: StartOptions = {}): Promise<StartedNode> {
  const p2pPort = options.p2pPort ?? (await freePort())
  const wsPort = options.wsPort ?? (await freePort())
  const httpPort = options.httpPort ?? (await freePort())
  const dicomPort = typeof options.dicom === 'number' ? options.dicom : options.dicom === true ? await freePort() : 0
  const args = [
    CLI,
    'start',
    '--home',
    home,
    ...(dicomPort === 0 ? [] : ['--dicom', String(dicomPort)]),
    '--listen',
    `/ip4/127.0.0.1/tcp/${p2pPort}`,
    '--listen',
    `/ip4/127.0.0.1/tcp/${wsPort}/ws`,
    '--http',
    `127.0.0.1:${httpPort}`,
    '--no-mdns',
    ...(options.preallocateMib === null ? [] : ['--preallocate', String(options.preallocateMib ?? 4)]),
    ...(options.peers ?? []).flatMap(peer => ['--peer', peer]),
    ...(options.extraArgs ?? [])
  ]
  const child = ownChild(
    spawn(process.execPath, args, {
      env: { ...childEnv, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe']
    })
  )
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString()
  })
  child.stderr.on('data', (chunk: Buffer) => {
    output += chunk.toString()
  })
  const viewerUrl = await waitFor(
    `node on ${home} to start`,
    () => {
      if (child.exitCode !== null) return null
      return /^viewer: (\S+)$/m.exec(output)?.[1]
    },
    options.startTimeoutMs ?? START_TIMEOUT_MS,
    50
  ).catch(() => null)
  if (viewerUrl === null) {
    const exitCode = child.exitCode
    await stopChild(child)
    throw new NodeStartError(home, exitCode, output, options.startTimeoutMs)
  }
  const peerId = /peer (12D3\S+)/.exec(output)?.[1] ?? ''
  const token = (await fs.readFile(join(home, 'api-token'), 'utf8')).trim()
  const http = `http://127.0.0.1:${httpPort}`
  const withToken = (headers?: HeadersInit): Record<string, string> => ({
    authorization: `Bearer ${token}`,
    ...(headers as Record<string, string> | undefined)
  })
  return {
    home,
    peerId,
    http,
    token,
    p2pPort,
    wsPort,
    httpPort,
    viewerUrl,
    dicomPort,
    process: child,
    output: () => output,
    async api<T>(method: string, path: string, body?: unknown) {
      const response = await fetch(`${http}${path}`, {
        method,
        headers: withToken(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(body === undefined ? {} : { body: JSON.stringify(body) })
      })
      return { status: response.status, body: (await response.json()) as T }
    },
    fetch: async (path, init = {}) => await fetch(`${http}${path}`, { ...init, headers: withToken(init.headers) }),
    stop: async () => {
      await stopChild(child)
    },
    kill: async () => {
      await killChild(child)
    }
  }
}

/** The node's TCP multiaddr with its peer id, for `--peer`. */
export const p2pAddr = (node: StartedNode): string => `/ip4/127.0.0.1/tcp/${node.p2pPort}/p2p/${node.peerId}`

export interface PeerEntry {
  peerId: string
  name: string
  role: string
  addrs: string[]
}

/** The members the node is connected to (GET /api/peers). */
export async function peersOf(node: StartedNode): Promise<PeerEntry[]> {
  const { status, body } = await node.api<PeerEntry[]>('GET', '/api/peers')
  if (status !== 200) throw new Error(`GET /api/peers answered ${status}`)
  return body
}

/** Waits until two nodes list each other as connected members. */
export async function connected(a: StartedNode, b: StartedNode, timeoutMs = 10_000): Promise<void> {
  const sees = async (x: StartedNode, y: StartedNode): Promise<boolean> =>
    (await peersOf(x)).some(p => p.peerId === y.peerId)
  await waitFor(
    `${a.peerId} and ${b.peerId} to see each other`,
    async () => (await sees(a, b)) && (await sees(b, a)),
    timeoutMs
  )
}

/**
 * Waits until a site knows `count` radiologists (`GET /api/duty`), so the routing of its next case reaches them:
 * a radiologist is known once its duty record has synced, a moment after the two connect.
 */
export async function knowsRadiologists(
  site: Pick<StartedNode, 'api'>,
  count: number,
  timeoutMs = 15_000
): Promise<void> {
  await waitFor(
    `the site to know ${count} radiologist${count === 1 ? '' : 's'}`,
    async () => (await site.api<unknown[]>('GET', '/api/duty')).body.length === count,
    timeoutMs
  )
}

/** Reads HOME/node.log as parsed JSON lines: whole lines only (the node may be writing the last one). */
export async function logOf(home: string): Promise<Array<Record<string, unknown>>> {
  const text = await fs.readFile(join(home, 'node.log'), 'utf8').catch(() => '')
  return text
    .slice(0, text.lastIndexOf('\n') + 1)
    .split('\n')
    .filter(line => line.trim() !== '')
    .map(line => JSON.parse(line) as Record<string, unknown>)
}

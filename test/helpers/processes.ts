/**
 * Test helpers for real processes: run the radmesh CLI, start nodes, wait for conditions, free ports.
 * Every child is killed when the test process exits, whatever happened, and every temporary folder is
 * removed then (`RADMESH_KEEP_TEST_DIRS=1` keeps them, to look at a failure).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { promises as fs, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

export const ROOT = resolve(import.meta.dirname, '../..')
export const CLI = join(ROOT, 'bin/radmesh')

/** The environment of every child: as ours, less the colour switches a test runner sets (Node warns when both are set). */
const { FORCE_COLOR: _force, NO_COLOR: _no, ...baseEnv } = process.env

const children = new Set<ChildProcess>()
const tempDirs = new Set<string>()
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL')
  // A full run makes a few GB of HOMEs and studies; a developer's disk filled up with them once.
  if (process.env['RADMESH_KEEP_TEST_DIRS'] === '1') return
  for (const dir of tempDirs) {
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 3 })
    } catch {}
  }
})

export async function tempDir (prefix = 'radmesh-test-'): Promise<string> {
  const dir = await fs.mkdtemp(join(tmpdir(), prefix))
  tempDirs.add(dir)
  return dir
}

/**
 * The lowest port the kernel hands out as the local port of outgoing connections. Ports below it are what
 * `freePort` picks: a test that stops a node and starts it again on the same port must not find it taken
 * by some connection's source port meanwhile (a convergence run failed that way).
 */
const EPHEMERAL_LOW = (() => {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768
  } catch {
    return 32768
  }
})()
const PORTS_FROM = 20_000

async function canListen (port: number): Promise<boolean> {
  const server = createServer()
  try {
    server.listen(port, '127.0.0.1')
    await once(server, 'listening')
    return true
  } catch {
    return false
  } finally {
    if (server.listening) server.close()
  }
}

/** A port free now, outside the kernel's range for outgoing connections when there is room below it. */
export async function freePort (): Promise<number> {
  if (EPHEMERAL_LOW - PORTS_FROM > 1000) {
    for (let attempt = 0; attempt < 50; attempt++) {
      const port = PORTS_FROM + Math.floor(Math.random() * (EPHEMERAL_LOW - PORTS_FROM))
      if (await canListen(port)) return port
    }
  }
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  server.close()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}

export interface CliResult { code: number | null, stdout: string, stderr: string }

/** Runs `radmesh ARGS…` to completion. */
export async function radmesh (args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...baseEnv, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  children.add(child)
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const [code] = await once(child, 'exit') as [number | null]
  children.delete(child)
  return { code, stdout, stderr }
}

/** Runs a radmesh command that must succeed; a failure throws with what it printed. */
export async function radmeshOk (args: string[]): Promise<string> {
  const result = await radmesh(args)
  if (result.code !== 0) throw new Error(`radmesh ${args.join(' ')} exited ${result.code}: ${result.stderr}`)
  return result.stdout
}

export async function waitFor<T> (what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  while (Date.now() < deadline) {
    try {
      const value = await probe()
      if (value !== undefined && value !== false) return value
    } catch (error) {
      lastError = error
    }
    await new Promise(resolve => setTimeout(resolve, intervalMs))
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError === undefined ? '' : ` (last error: ${(lastError as Error).message})`}`)
}

export interface StartedNode {
  home: string
  peerId: string
  http: string
  token: string
  p2pPort: number
  wsPort: number
  httpPort: number
  viewerUrl: string
  /** the C-STORE SCP port, when started with `dicom: true` */
  dicomPort: number
  process: ChildProcess
  output: () => string
  api<T = unknown> (method: string, path: string, body?: unknown): Promise<{ status: number, body: T }>
  /** a raw request with the node's token: for DICOMweb */
  fetch (path: string, init?: RequestInit): Promise<Response>
  stop (): Promise<void>
  kill (): Promise<void>
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
}

/** Starts `radmesh start` on HOME and resolves once it printed its viewer line. */
export async function startNode (home: string, options: StartOptions = {}): Promise<StartedNode> {
  const p2pPort = options.p2pPort ?? await freePort()
  const wsPort = options.wsPort ?? await freePort()
  const httpPort = options.httpPort ?? await freePort()
  const dicomPort = typeof options.dicom === 'number' ? options.dicom : options.dicom === true ? await freePort() : 0
  const args = [CLI, 'start', '--home', home, ...(dicomPort === 0 ? [] : ['--dicom', String(dicomPort)]),
    '--listen', `/ip4/127.0.0.1/tcp/${p2pPort}`, '--listen', `/ip4/127.0.0.1/tcp/${wsPort}/ws`,
    '--http', `127.0.0.1:${httpPort}`, '--no-mdns',
    ...(options.preallocateMib === null ? [] : ['--preallocate', String(options.preallocateMib ?? 4)]),
    ...(options.peers ?? []).flatMap(peer => ['--peer', peer]), ...(options.extraArgs ?? [])]
  const child = spawn(process.execPath, args, { env: { ...baseEnv, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] })
  children.add(child)
  child.on('exit', () => children.delete(child))
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const viewerUrl = await waitFor(`node on ${home} to start`, () => {
    if (child.exitCode !== null) throw new Error(`node exited ${child.exitCode}: ${output}`)
    return /^viewer: (\S+)$/m.exec(output)?.[1]
  }, 20_000, 50).catch((error: Error) => { throw new Error(`${error.message}\n${output}`) })
  const peerId = /peer (12D3\S+)/.exec(output)?.[1] ?? ''
  const token = (await fs.readFile(join(home, 'api-token'), 'utf8')).trim()
  const http = `http://127.0.0.1:${httpPort}`
  const stopWith = async (signal: NodeJS.Signals): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = once(child, 'exit')
    child.kill(signal)
    await exited
  }
  return {
    home, peerId, http, token, p2pPort, wsPort, httpPort, viewerUrl, dicomPort, process: child,
    output: () => output,
    async api<T> (method: string, path: string, body?: unknown) {
      const response = await fetch(`${http}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) })
      })
      return { status: response.status, body: await response.json() as T }
    },
    fetch: async (path, init = {}) => await fetch(`${http}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, ...(init.headers as Record<string, string> | undefined) } }),
    stop: async () => { await stopWith('SIGTERM') },
    kill: async () => { await stopWith('SIGKILL') }
  }
}

export const p2pAddr = (node: StartedNode): string => `/ip4/127.0.0.1/tcp/${node.p2pPort}/p2p/${node.peerId}`

export async function peersOf (node: StartedNode): Promise<Array<{ peerId: string, name: string, role: string, addrs: string[] }>> {
  const { status, body } = await node.api<Array<{ peerId: string, name: string, role: string, addrs: string[] }>>('GET', '/api/peers')
  if (status !== 200) throw new Error(`GET /api/peers answered ${status}`)
  return body
}

/** Waits until two nodes list each other as connected members. */
export async function connected (a: StartedNode, b: StartedNode, timeoutMs = 10_000): Promise<void> {
  await waitFor(`${a.peerId} and ${b.peerId} to see each other`, async () =>
    (await peersOf(a)).some(p => p.peerId === b.peerId) && (await peersOf(b)).some(p => p.peerId === a.peerId), timeoutMs)
}

/** Reads HOME/node.log as parsed JSON lines. */
export async function logOf (home: string): Promise<Array<Record<string, unknown>>> {
  const text = await fs.readFile(join(home, 'node.log'), 'utf8').catch(() => '')
  return text.split('\n').filter(line => line.trim() !== '').map(line => JSON.parse(line) as Record<string, unknown>)
}

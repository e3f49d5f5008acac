/**
 * A real Orthanc (Debian's `orthanc`) on loopback for tests and benchmarks: its own storage in a temp
 * folder, HTTP and DICOM ports of our choosing, no authentication, reachable only from this machine.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { ownChild } from './children.ts'
import { freePort } from './ports.ts'
import { tempDir } from './temp.ts'
import { waitFor } from './wait.ts'

export interface OrthancServer {
  http: string
  dicomPort: number
  aeTitle: string
  process: ChildProcess
  request<T = unknown>(method: string, path: string, body?: unknown): Promise<T>
  stop(): Promise<void>
}

export interface OrthancOptions {
  /** DICOM modalities Orthanc may send to: name -> [AE, host, port] */
  modalities?: Record<string, [string, string, number]>
  plugins?: string[]
  /** Orthanc peers it may store to: name -> { Url } (OrthancPeers) */
  peers?: Record<string, { Url: string }>
  /** its DICOM port (a free one unless given: a test that starts it late names the port it was told of) */
  dicomPort?: number
  /** the folder of its storage and configuration, kept between starts (a new temporary one unless given) */
  dir?: string
  /** how often its REST API is asked whether it is up, in ms (200 unless given) */
  readyPollMs?: number
}

export async function startOrthanc(options: OrthancOptions = {}): Promise<OrthancServer> {
  const dir = options.dir ?? (await tempDir('orthanc-'))
  const httpPort = await freePort()
  let dicomPort = options.dicomPort ?? (await freePort())
  // Two free ports in a row can be the same one; Orthanc then fails to start.
  while (dicomPort === httpPort) dicomPort = await freePort()
  const config = {
    Name: 'radmesh-test-orthanc',
    StorageDirectory: join(dir, 'storage'),
    IndexDirectory: join(dir, 'index'),
    HttpPort: httpPort,
    DicomPort: dicomPort,
    DicomAet: 'ORTHANC',
    RemoteAccessAllowed: false,
    AuthenticationEnabled: false,
    HttpServerEnabled: true,
    DicomServerEnabled: true,
    DicomModalities: options.modalities ?? {},
    Plugins: options.plugins ?? [],
    OrthancPeers: options.peers ?? {},
    StableAge: 1,
    DicomScuTimeout: 30
  }
  const configPath = join(dir, 'orthanc.json')
  await fs.writeFile(configPath, JSON.stringify(config, null, 2))
  const env = { ...process.env, TCP_NODELAY: '1' }
  const child = ownChild(spawn('Orthanc', [configPath], { stdio: ['ignore', 'ignore', 'pipe'], env }))
  let stderr = ''
  child.stderr.on('data', (c: Buffer) => {
    stderr = (stderr + c.toString()).slice(-4000)
  })
  const http = `http://127.0.0.1:${httpPort}`
  await waitFor(
    'Orthanc to answer',
    async () => {
      if (child.exitCode !== null) throw new Error(`Orthanc exited ${child.exitCode}: ${stderr}`)
      return (await fetch(`${http}/system`)).ok
    },
    30_000,
    options.readyPollMs ?? 200
  )
  return {
    http,
    dicomPort,
    aeTitle: 'ORTHANC',
    process: child,
    async request<T>(method: string, path: string, body?: unknown): Promise<T> {
      const raw = body instanceof Uint8Array
      const response = await fetch(`${http}${path}`, {
        method,
        ...(body === undefined ? {} : { body: raw ? (body as unknown as BodyInit) : JSON.stringify(body) }),
        headers: body === undefined ? {} : { 'content-type': raw ? 'application/dicom' : 'application/json' }
      })
      if (!response.ok) throw new Error(`Orthanc ${method} ${path}: ${response.status} ${await response.text()}`)
      return (await response.json()) as T
    },
    async stop() {
      if (child.exitCode !== null) return
      const exited = new Promise(resolve => child.once('exit', resolve))
      child.kill('SIGTERM')
      await exited
    }
  }
}

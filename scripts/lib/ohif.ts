/**
 * The OHIF Viewer v3 (the npm package `@ohif/app`, its production build) in front of a radmesh node, the way
 * docs/OHIF.md deploys it: one origin serves OHIF's files, its `app-config.js` (the one in docs/OHIF.md), and
 * forwards the node's `/dicom-web` and `/signin` to it, so the session cookie that `/signin/CODE`
 * sets authenticates every request OHIF makes. For the OHIF test, and for anyone who wants to try it.
 */
import { execFile } from 'node:child_process'
import { promises as fs } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { join } from 'node:path'
import { promisify } from 'node:util'
import fastifyStatic from '@fastify/static'
import Fastify from 'fastify'
import { ROOT } from './cli.ts'

export const OHIF_VERSION = '3.13.2'
/** Where the unpacked package is kept between runs (about 213 MB): `CACHE/package/dist` is the app. */
export const OHIF_CACHE = join(ROOT, 'node_modules', '.cache', `ohif-app-${OHIF_VERSION}`)
/** The node's paths the proxy forwards; every other path is OHIF's. */
export const NODE_PREFIXES = ['/dicom-web/', '/signin/'] as const

const run = promisify(execFile)

async function exists(path: string): Promise<boolean> {
  return await fs.access(path).then(
    () => true,
    () => false
  )
}

/**
 * The folder of OHIF's built app: from the cache, or fetched once with `npm pack @ohif/app@VERSION` (the npm
 * registry) and unpacked. Throws when it cannot be had, with what npm or tar said.
 */
export async function ohifDist(cache = OHIF_CACHE): Promise<string> {
  const dist = join(cache, 'package', 'dist')
  if (await exists(join(dist, 'index.html'))) return dist
  await fs.mkdir(cache, { recursive: true })
  // Unpacked beside the cache, then renamed: a run that stops midway, or another at the same time, never
  // leaves a half-written package/ behind.
  const work = await fs.mkdtemp(join(cache, 'unpack-'))
  try {
    const { stdout } = await run('npm', ['pack', `@ohif/app@${OHIF_VERSION}`, '--pack-destination', work, '--silent'], {
      maxBuffer: 16 * 1024 * 1024
    })
    const tarball = stdout.trim().split('\n').pop() ?? ''
    await run('tar', ['xzf', join(work, tarball), '-C', work])
    if (!(await exists(join(work, 'package', 'dist', 'index.html')))) {
      throw new Error(`${tarball} has no package/dist/index.html`)
    }
    await fs.rename(join(work, 'package'), join(cache, 'package')).catch(async (error: unknown) => {
      if (!(await exists(join(dist, 'index.html')))) throw error
    })
  } catch (error) {
    const { stderr } = error as { stderr?: string }
    throw new Error(
      `could not get @ohif/app@${OHIF_VERSION} (npm pack, tar xzf into ${cache}): ` +
        `${(error as Error).message}${stderr === undefined ? '' : `\n${stderr}`}`
    )
  } finally {
    await fs.rm(work, { recursive: true, force: true })
  }
  return dist
}

/** The `app-config.js` docs/OHIF.md gives: its first `js` code block that sets `window.config`. */
export async function appConfigFromDocs(): Promise<string> {
  const text = await fs.readFile(join(ROOT, 'docs', 'OHIF.md'), 'utf8')
  const block = [...text.matchAll(/```js\n([\s\S]*?)```/g)].map(m => m[1] ?? '').find(b => b.includes('window.config'))
  if (block === undefined) throw new Error('docs/OHIF.md has no js block that sets window.config')
  return block
}

export interface ForwardedResponse {
  method: string
  url: string
  status: number
}

export interface OhifServer {
  /** `http://127.0.0.1:PORT`, OHIF and the node on one origin */
  url: string
  /**
   * every request forwarded to the node, with the node's status: 0 while it has not answered, 502 when it could
   * not be reached, 499 (as nginx logs it) when the browser went away first
   */
  readonly forwarded: readonly ForwardedResponse[]
  close(): Promise<void>
}

export interface OhifServerOptions {
  /** OHIF's built app, from ohifDist() */
  dist: string
  /** the node's HTTP address, `http://127.0.0.1:7480` */
  node: string
  /** the text served as /app-config.js */
  appConfig: string
  /** 0 = any free port */
  port?: number
}

/**
 * Serves OHIF on 127.0.0.1 and forwards NODE_PREFIXES to the node as they come: bodies streamed both ways,
 * headers kept (the cookie, and the Host, from which the node builds the BulkDataURIs it answers), as a reverse
 * proxy does. Paths that are not files are answered with index.html: OHIF routes in the browser (`/viewer`, …).
 */
export async function serveOhif(options: OhifServerOptions): Promise<OhifServer> {
  const target = new URL(options.node)
  const forwarded: ForwardedResponse[] = []
  const app = Fastify({ logger: false })
  app.addHook('onRequest', async (request, reply) => {
    // Matched and forwarded normalised, as nginx does: `/dicom-web/../api/…` is not the node's DICOMweb.
    const { pathname, search } = new URL(request.url, 'http://proxy')
    if (!NODE_PREFIXES.some(prefix => pathname.startsWith(prefix))) return
    reply.hijack()
    const record: ForwardedResponse = { method: request.method, url: pathname + search, status: 0 }
    forwarded.push(record)
    const upstream = httpRequest(
      {
        host: target.hostname,
        port: target.port,
        method: request.method,
        path: record.url,
        headers: { ...request.raw.headers, 'x-forwarded-for': request.ip }
      },
      response => {
        record.status = response.statusCode ?? 0
        reply.raw.writeHead(record.status, response.rawHeaders)
        response.pipe(reply.raw)
      }
    )
    upstream.on('error', () => {
      record.status = 502
      if (!reply.raw.headersSent) reply.raw.writeHead(502).end()
      else reply.raw.destroy()
    })
    reply.raw.on('close', () => {
      if (reply.raw.writableFinished) return
      if (record.status === 0) record.status = 499
      upstream.destroy()
    })
    request.raw.pipe(upstream)
  })
  app.get(
    '/app-config.js',
    async (_request, reply) =>
      await reply.type('text/javascript; charset=utf-8').header('cache-control', 'no-store').send(options.appConfig)
  )
  await app.register(fastifyStatic, { root: options.dist })
  app.setNotFoundHandler(async (request, reply) => {
    if (request.method !== 'GET' || /\.[a-z0-9]+$/i.test(request.url.split('?')[0] ?? '')) {
      return await reply.code(404).send()
    }
    return await reply.sendFile('index.html')
  })
  await app.listen({ host: '127.0.0.1', port: options.port ?? 0 })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('the OHIF server has no TCP address')
  return {
    url: `http://127.0.0.1:${address.port}`,
    forwarded,
    close: async () => {
      await app.close()
    }
  }
}

/**
 * The reading viewer (viewer/): `GET /signin/:code` spends a one-time code and sets the session cookie;
 * `/` is the viewer's page, `/viewer/app.js` its bundle (built in memory when the server starts, see
 * viewer/build.ts), `/viewer/style.css`, and `/viewer/codecs/*.wasm` the image decoders.
 * `POST /api/signin-links` (bearer token only) makes another one-time sign-in URL, for `radmesh viewer`.
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { buildViewer, CODEC_FILES } from '../../viewer/build.ts'
import { RadmeshError } from '../errors.ts'
import { SESSION_COOKIE, type Sessions } from './auth.ts'
import type { NodeServices } from './services.ts'

const VIEWER_DIR = join(import.meta.dirname, '..', '..', 'viewer')

/** The page loads only its own script, styles, decoders (WebAssembly) and API: nothing from elsewhere. */
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store'
}

export async function viewerRoutes (app: FastifyInstance, { node, sessions }: { node: NodeServices, sessions: Sessions }): Promise<void> {
  const bundle = buildViewer()
  bundle.catch(error => { app.log.error({ err: error }, 'the viewer bundle could not be built; the viewer will not load') })
  const page = fs.readFile(join(VIEWER_DIR, 'index.html'), 'utf8')
  const style = fs.readFile(join(VIEWER_DIR, 'src', 'style.css'), 'utf8')

  app.get<{ Params: { code: string } }>('/signin/:code', { config: { public: true } }, async (request, reply) => {
    const session = sessions.redeem(request.params.code)
    if (session === undefined) throw new RadmeshError('RADMESH_UNAUTHORIZED', 'this sign-in link was already used or is unknown; run "radmesh viewer --home HOME" for a new one')
    void reply.header('set-cookie', `${SESSION_COOKIE}=${session}; HttpOnly; SameSite=Strict; Path=/`)
    return await reply.redirect('/')
  })

  app.post('/api/signin-links', async (request) => {
    if (request.actor.type !== 'api') throw new RadmeshError('RADMESH_UNAUTHORIZED', 'sign-in links are made with the API token (HOME/api-token), not from a viewer session')
    return { url: `${request.protocol}://${request.host}/signin/${sessions.issueSignInCode()}` }
  })

  app.get('/api/session', async (request) => {
    return { actor: request.actor.type, idleTimeoutMs: request.actor.type === 'viewer' ? sessions.idleTimeoutMs : null, name: node.certificate.name, role: node.certificate.role, subspecialties: node.certificate.subspecialties, peerId: node.peerId }
  })

  app.post('/api/signout', async (request, reply) => {
    if (request.session !== undefined) sessions.signOut(request.session)
    return await reply.header('set-cookie', `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`).code(204).send()
  })

  // The page and its assets are public: they hold no patient data, and the page itself shows the sign-in
  // screen when the API answers 401. Everything they load after that needs the session.
  app.get('/', { config: { public: true } }, async (_request, reply) => {
    return await reply.type('text/html; charset=utf-8').headers(SECURITY_HEADERS).send((await page).replaceAll('{{NODE_NAME}}', escapeHtml(node.certificate.name)))
  })
  app.get('/viewer/app.js', { config: { public: true } }, async (_request, reply) => {
    return await reply.type('text/javascript; charset=utf-8').headers(SECURITY_HEADERS).send(await bundle)
  })
  app.get('/viewer/style.css', { config: { public: true } }, async (_request, reply) => {
    return await reply.type('text/css; charset=utf-8').headers(SECURITY_HEADERS).send(await style)
  })
  app.get<{ Params: { file: string } }>('/viewer/codecs/:file', { config: { public: true } }, async (request, reply) => {
    // An own property only: `__proto__` or `toString` must not find what every object inherits.
    const path = Object.hasOwn(CODEC_FILES, request.params.file) ? CODEC_FILES[request.params.file] : undefined
    if (path === undefined) throw new RadmeshError('RADMESH_NOT_FOUND', `no decoder named ${request.params.file}`)
    return await reply.type('application/wasm').header('cache-control', 'max-age=86400').send(await fs.readFile(path))
  })
}

function escapeHtml (text: string): string {
  return text.replace(/[&<>"']/g, c => `&#${c.charCodeAt(0)};`)
}

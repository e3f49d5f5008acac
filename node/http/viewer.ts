/**
 * The reading viewer (viewer/): `GET /signin/:code` spends a one-time code and sets the session cookie;
 * `/` is the viewer's page, `/viewer/app.js` its bundle (built in memory when the server starts, see
 * viewer/build.ts), `/viewer/style.css`, and `/viewer/codecs/*.wasm` the image decoders.
 * `POST /api/signin-links` (bearer token only) makes another one-time sign-in URL, for `radmesh viewer`.
 * The files are sent by @fastify/static, by name only: the page is filled in with the node's name, the bundle
 * lives in memory and the decoders in three packages, so no folder is served as a whole.
 */
import { promises as fs } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import fastifyStatic from '@fastify/static'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { ERROR_RESPONSES } from '../../protocol/api/common.ts'
import { Session, SignInLink, SignInParams } from '../../protocol/api/session.ts'
import { buildViewer, CODEC_FILES } from '../../viewer/build.ts'
import { RadmeshError } from '../errors.ts'
import { SESSION_COOKIE, type Sessions } from './auth.ts'
import type { Self } from './services.ts'

const VIEWER_DIR = join(import.meta.dirname, '..', '..', 'viewer')

/** The page loads only its own script, styles, decoders (WebAssembly) and API: nothing from elsewhere. */
const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; " +
    "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store'
}
/** The session cookie: never read by scripts, never sent by another site's page. */
const COOKIE = { httpOnly: true, sameSite: 'strict', path: '/' } as const
/** A decoder by file name: any name that is not one is answered 404. */
const CodecParams = Type.Object({ file: Type.String() })
/** The decoders do not change while a node runs. */
const CODEC_MAX_AGE_S = 86_400

export interface ViewerRoutesOptions {
  self: Self
  sessions: Pick<Sessions, 'redeem' | 'issueSignInCode' | 'signOut' | 'idleTimeoutMs'>
}

export const viewerRoutes: FastifyPluginAsyncTypebox<ViewerRoutesOptions> = async (app, { self, sessions }) => {
  await app.register(fastifyStatic, { root: join(VIEWER_DIR, 'src'), serve: false, cacheControl: false })
  const bundle = buildViewer()
  bundle.catch(error => {
    app.log.error({ err: error }, 'the viewer bundle could not be built; the viewer will not load')
  })
  const page = fs.readFile(join(VIEWER_DIR, 'index.html'), 'utf8')

  app.get('/signin/:code', { config: { public: true }, schema: { params: SignInParams } }, async (request, reply) => {
    const session = sessions.redeem(request.params.code)
    if (session === undefined) {
      throw new RadmeshError(
        'RADMESH_UNAUTHORIZED',
        'this sign-in link was already used or is unknown; run "radmesh viewer --home HOME" for a new one'
      )
    }
    return await reply.setCookie(SESSION_COOKIE, session, COOKIE).redirect('/')
  })

  app.post('/api/signin-links', { schema: { response: { 200: SignInLink, ...ERROR_RESPONSES } } }, async request => {
    if (request.actor.type !== 'api') {
      throw new RadmeshError(
        'RADMESH_UNAUTHORIZED',
        'sign-in links are made with the API token (HOME/api-token), not from a viewer session'
      )
    }
    return { url: `${request.protocol}://${request.host}/signin/${sessions.issueSignInCode()}` }
  })

  app.get('/api/session', { schema: { response: { 200: Session, ...ERROR_RESPONSES } } }, async request => ({
    actor: request.actor.type,
    idleTimeoutMs: request.actor.type === 'viewer' ? sessions.idleTimeoutMs : null,
    name: self.certificate.name,
    role: self.certificate.role,
    subspecialties: self.certificate.subspecialties,
    peerId: self.peerId
  }))

  app.post('/api/signout', async (request, reply) => {
    if (request.session !== undefined) sessions.signOut(request.session)
    return await reply.clearCookie(SESSION_COOKIE, COOKIE).code(204).send()
  })

  // The page and its assets are public: they hold no patient data, and the page itself shows the sign-in
  // screen when the API answers 401. Everything they load after that needs the session.
  app.get('/', { config: { public: true } }, async (_request, reply) => {
    const html = (await page).replaceAll('{{NODE_NAME}}', escapeHtml(self.certificate.name))
    return await reply.type('text/html; charset=utf-8').headers(SECURITY_HEADERS).send(html)
  })
  app.get('/viewer/app.js', { config: { public: true } }, async (_request, reply) => {
    return await reply
      .type('text/javascript; charset=utf-8')
      .headers(SECURITY_HEADERS)
      .send(await bundle)
  })
  app.get('/viewer/style.css', { config: { public: true } }, async (_request, reply) => {
    return await reply.headers(SECURITY_HEADERS).sendFile('style.css')
  })
  app.get(
    '/viewer/codecs/:file',
    {
      config: { public: true },
      schema: { params: CodecParams }
    },
    async (request, reply) => {
      // An own property only: `__proto__` or `toString` must not find what every object inherits.
      const path = Object.hasOwn(CODEC_FILES, request.params.file) ? CODEC_FILES[request.params.file] : undefined
      if (path === undefined) throw new RadmeshError('RADMESH_NOT_FOUND', `no decoder named ${request.params.file}`)
      return await reply.header('cache-control', `max-age=${CODEC_MAX_AGE_S}`).sendFile(basename(path), dirname(path))
    }
  )
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, c => `&#${c.charCodeAt(0)};`)
}

/**
 * The viewer's entry: `GET /signin/:code` spends a one-time code and sets the session cookie, then `/`
 * serves the viewer. Until the reading viewer lands (issue 6) the page shows the node and its peers.
 */
import type { FastifyInstance } from 'fastify'
import { RadmeshError } from '../errors.ts'
import { SESSION_COOKIE, type Sessions } from './auth.ts'
import type { NodeServices } from './services.ts'

const page = (title: string): string => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font:15px system-ui,sans-serif;margin:2rem;background:#111;color:#eee}h1{font-size:1.3rem}
table{border-collapse:collapse}td,th{padding:.3rem .8rem;border-bottom:1px solid #333;text-align:left}code{color:#9cf}</style>
</head><body><h1 id="title">${title}</h1><p id="me"></p><h2>Connected members</h2>
<table><thead><tr><th>name</th><th>role</th><th>peer id</th></tr></thead><tbody id="peers"></tbody></table>
<script type="module">
const esc = s => String(s).replace(/[&<>"']/g, c => '&#' + c.charCodeAt(0) + ';')
async function refresh () {
  const health = await (await fetch('/api/health')).json()
  document.getElementById('me').innerHTML = 'This node: <b>' + esc(health.name) + '</b> (' + esc(health.role) + ') <code>' + esc(health.peerId) + '</code>'
  const response = await fetch('/api/peers')
  if (response.status === 401) { document.body.innerHTML = '<h1>Signed out</h1><p>Open a new sign-in URL from your radmesh node.</p>'; return }
  const peers = await response.json()
  document.getElementById('peers').innerHTML = peers.map(p => '<tr><td>' + esc(p.name) + '</td><td>' + esc(p.role) + '</td><td><code>' + esc(p.peerId) + '</code></td></tr>').join('')
}
refresh(); setInterval(refresh, 2000)
</script></body></html>`

export async function viewerRoutes (app: FastifyInstance, { node, sessions }: { node: NodeServices, sessions: Sessions }): Promise<void> {
  app.get<{ Params: { code: string } }>('/signin/:code', { config: { public: true } }, async (request, reply) => {
    const session = sessions.redeem(request.params.code)
    if (session === undefined) throw new RadmeshError('RADMESH_UNAUTHORIZED', 'this sign-in link was already used or is unknown; restart the node or ask it for a new one')
    void reply.header('set-cookie', `${SESSION_COOKIE}=${session}; HttpOnly; SameSite=Strict; Path=/`)
    return await reply.redirect('/')
  })
  app.get('/', async (_request, reply) => {
    return await reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(page(`radmesh: ${node.certificate.name}`))
  })
}

/**
 * Membership, end to end: real `radmesh start` processes on loopback TCP, set up through the CLI.
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { test } from 'uvu'
import { nodesOfTests } from '../helpers/nodes.ts'
import { createScratchConsortium } from '../../scripts/lib/consortium.ts'
import * as assert from 'uvu/assert'
import { intrude } from '../helpers/intrude.ts'
import { logOf, p2pAddr, peersOf, type StartedNode, type StartOptions } from '../../scripts/lib/node-process.ts'
import { radmesh, radmeshOk } from '../../scripts/lib/cli.ts'
import { waitFor } from '../../scripts/lib/wait.ts'

const nodes = nodesOfTests(test, 'St Elsewhere Teleradiology')
const start = async (home: string, peers: string[] = [], options: StartOptions = {}): Promise<StartedNode> =>
  await nodes.start(home, { peers, ...options })

let site: StartedNode
let reader: StartedNode

const lists = async (node: StartedNode, peerId: string): Promise<boolean> =>
  (await peersOf(node)).some(p => p.peerId === peerId)

/** The first refusal of `peerId` in the node's log, waited for. */
async function refusalOf(node: StartedNode, peerId: string, timeoutMs = 5_000): Promise<Record<string, unknown>> {
  return await waitFor(
    `the refusal of ${peerId} in the log`,
    async () =>
      (await logOf(node.home)).find(line => line['event'] === 'member-refused' && line['remotePeer'] === peerId),
    timeoutMs
  )
}

test('two members started from separate HOMEs list each other in /api/peers within 5 s', async () => {
  const siteHome = await nodes.member('Site A', 'site')
  const readerHome = await nodes.member('Dr Reader', 'radiologist', [])
  site = await start(siteHome)
  reader = await start(readerHome, [p2pAddr(site)])
  await waitFor(
    'both to list each other',
    async () => (await lists(site, reader.peerId)) && (await lists(reader, site.peerId)),
    5_000
  )
  const [seen] = (await peersOf(site)).filter(p => p.peerId === reader.peerId)
  assert.is(seen?.name, 'Dr Reader')
  assert.is(seen?.role, 'radiologist')
  assert.ok((seen?.addrs.length ?? 0) > 0)
})

test('a member connects over WebSockets as well as TCP', async () => {
  const home = await nodes.member('Dr Websocket', 'radiologist')
  const node = await start(home, [`/ip4/127.0.0.1/tcp/${site.wsPort}/ws/p2p/${site.peerId}`])
  await waitFor('the WebSocket member on the site', async () => await lists(site, node.peerId), 5_000)
  const [seen] = (await peersOf(node)).filter(p => p.peerId === site.peerId)
  assert.ok(
    seen?.addrs.some(addr => addr.includes('/ws')),
    `addresses: ${seen?.addrs.join(', ')}`
  )
  await node.stop()
})

test('a libp2p node with no certificate is refused before any stream, and the refusal is logged', async () => {
  const result = await intrude(['plain', p2pAddr(site)])
  assert.is(result.streamOpened, false, 'the outsider opened a stream')
  assert.ok(result.streamError !== undefined)
  assert.not.ok(await lists(site, result.peerId))
  assert.is((await refusalOf(site, result.peerId, 5_000))['code'], 'no-certificate')
})

test('a certificate of another consortium is refused with reason wrong-consortium', async () => {
  const other = await createScratchConsortium('Another Network')
  const home = await other.member('Foreign Site', 'site')
  const result = await intrude([
    'certificate',
    home,
    join(home, 'certificate.json'),
    join(home, 'consortium.json'),
    p2pAddr(site)
  ])
  assert.is(result.streamOpened, false)
  assert.not.ok(await lists(site, result.peerId))
  assert.is((await refusalOf(site, result.peerId, 5_000))['code'], 'wrong-consortium')
})

test('an expired certificate is refused with reason expired', async () => {
  const home = await nodes.member('Dr Lapsed', 'radiologist', ['--valid-for', '1s'])
  await new Promise(resolve => setTimeout(resolve, 1_200))
  const result = await intrude([
    'certificate',
    home,
    join(home, 'certificate.json'),
    join(home, 'consortium.json'),
    p2pAddr(site)
  ])
  assert.is(result.streamOpened, false)
  assert.is((await refusalOf(site, result.peerId, 5_000))['code'], 'expired')
})

test('a certificate stolen from another member is refused with reason peer-id-mismatch', async () => {
  const thiefHome = join(nodes.consortium.root, 'thief')
  await radmeshOk(['init', '--home', thiefHome, '--name', 'Thief', '--role', 'radiologist'])
  const result = await intrude([
    'certificate',
    thiefHome,
    join(reader.home, 'certificate.json'),
    join(reader.home, 'consortium.json'),
    p2pAddr(site)
  ])
  assert.is(result.streamOpened, false)
  assert.is((await refusalOf(site, result.peerId, 5_000))['code'], 'peer-id-mismatch')
})

test('a revoked member is refused, and learns why', async () => {
  const home = await nodes.member('Dr Former', 'radiologist')
  const peerId = JSON.parse(await fs.readFile(join(home, 'certificate.json'), 'utf8')).peerId as string
  await radmeshOk(['consortium', 'revoke', '--dir', nodes.consortium.dir, '--peer', peerId, '--home', site.home])
  const revoked = await start(home, [p2pAddr(site)])
  assert.is((await refusalOf(site, peerId, 8_000))['code'], 'revoked')
  await waitFor(
    'the revoked node to log why',
    async () =>
      (await logOf(revoked.home)).some(line => line['event'] === 'refused-by-peer' && line['code'] === 'revoked'),
    5_000
  )
  assert.not.ok(await lists(site, peerId))
  assert.equal(await peersOf(revoked), [])
  await revoked.stop()
})

test('a revocation issued while members are connected disconnects the revoked one everywhere it spreads', async () => {
  const home = await nodes.member('Dr Soon Revoked', 'radiologist')
  const victim = await start(home, [p2pAddr(site), p2pAddr(reader)])
  await waitFor(
    'the victim on both members',
    async () =>
      (await lists(site, victim.peerId)) &&
      (await lists(reader, victim.peerId)) &&
      (await peersOf(victim)).length === 2,
    8_000
  )

  // Handed to the site only; the reader must learn it from the site.
  await radmeshOk([
    'consortium',
    'revoke',
    '--dir',
    nodes.consortium.dir,
    '--peer',
    victim.peerId,
    '--home',
    site.home,
    '--reason',
    'left the practice'
  ])
  await waitFor(
    'the victim gone from the site and the reader',
    async () => !(await lists(site, victim.peerId)) && !(await lists(reader, victim.peerId)),
    8_000
  )
  await waitFor('the victim alone', async () => (await peersOf(victim)).length === 0, 8_000)
  const learnt = (await logOf(reader.home)).some(
    line => line['event'] === 'member-revoked' && line['peer'] === victim.peerId
  )
  assert.ok(learnt, 'the reader logged the revocation')

  // It keeps redialling (it does not know it is revoked); it stays out.
  await new Promise(resolve => setTimeout(resolve, 3_000))
  assert.not.ok(await lists(site, victim.peerId))
  assert.not.ok(await lists(reader, victim.peerId))
  assert.equal(await peersOf(victim), [])
  await victim.stop()
})

test(
  'the peer id survives a restart, and a member killed ' + 'with SIGKILL is reconnected without any command',
  async () => {
    const home = await nodes.member('Dr Restart', 'radiologist')
    const first = await start(home, [p2pAddr(site)])
    await waitFor('the member on the site', async () => await lists(site, first.peerId), 5_000)
    await first.stop()
    const second = await start(home, [p2pAddr(site)], { p2pPort: first.p2pPort, wsPort: first.wsPort })
    assert.is(second.peerId, first.peerId)
    await waitFor('the member back on the site', async () => await lists(site, second.peerId), 5_000)

    await second.kill()
    await waitFor('the site to notice', async () => !(await lists(site, second.peerId)), 30_000)
    // Restarted with no --peer: only the site's own redial can bring it back.
    const third = await start(home, [], { p2pPort: first.p2pPort, wsPort: first.wsPort })
    assert.is(third.peerId, first.peerId)
    await waitFor(
      'the site to redial the restarted member',
      async () => (await lists(site, third.peerId)) && (await lists(third, site.peerId)),
      20_000
    )
    await third.stop()
  }
)

test(
  'a member sending malformed and oversized revocation ' + 'frames is reset and penalised; the node serves on',
  async () => {
    const home = await nodes.member('Dr Garbage', 'radiologist')
    const result = await intrude(['garbage', home, p2pAddr(site)])
    assert.is(result.sent, 3)
    assert.ok(result.afterwards)
    const bad = await waitFor(
      'the bad messages in the log',
      async () => {
        const lines = (await logOf(site.home)).filter(
          line => line['event'] === 'bad-message' && line['peer'] === result.peerId
        )
        return lines.length >= 3 ? lines : undefined
      },
      5_000
    )
    assert.ok(bad.every(line => line['protocol'] === '/radmesh/revocations/1.0.0'))
    assert.is((await site.api<{ ok: boolean }>('GET', '/api/health')).body.ok, true)
    assert.ok(await lists(site, reader.peerId), 'the site still serves its other members')
  }
)

test('a member that keeps sending bad data is banned: disconnected, then refused with reason banned', async () => {
  const home = await nodes.member('Dr Persistent Garbage', 'radiologist')
  const result = await intrude(['garbage', home, p2pAddr(site), '8'])
  assert.is(result.afterwards, false, 'the banned member could still open a stream')
  const log = await waitFor(
    'the ban and the refusal in the log',
    async () => {
      const lines = await logOf(site.home)
      const dropped = lines.some(
        l => l['event'] === 'member-dropped' && l['peer'] === result.peerId && /banned/.test(String(l['reason']))
      )
      const refused = lines.some(
        l => l['event'] === 'member-refused' && l['remotePeer'] === result.peerId && l['code'] === 'banned'
      )
      return dropped && refused ? lines : undefined
    },
    8_000
  )
  assert.ok(log.length > 0)
  assert.not.ok(await lists(site, result.peerId))
  assert.ok(await lists(site, reader.peerId), 'the site still serves its other members')
})

test('a member whose certificate expires while connected is disconnected at expiry and kept out', async () => {
  const home = await nodes.member('Dr Short Term', 'radiologist', ['--valid-for', '8s'])
  const expiresAt = Date.parse(
    JSON.parse(await fs.readFile(join(home, 'certificate.json'), 'utf8')).expiresAt as string
  )
  const member = await start(home, [p2pAddr(site)])
  await waitFor('the member on the site', async () => await lists(site, member.peerId), 5_000)
  await waitFor('the member dropped at expiry', async () => !(await lists(site, member.peerId)), 15_000)
  assert.ok(Date.now() >= expiresAt, 'dropped before its certificate expired')
  assert.ok(Date.now() - expiresAt < 5_000, `dropped ${Date.now() - expiresAt} ms after expiry`)
  // The node's log is a write stream: its line can land a moment after the connection closed.
  const dropped = await waitFor(
    "the drop in the site's log",
    async () => (await logOf(site.home)).find(l => l['event'] === 'member-dropped' && l['peer'] === member.peerId),
    3_000
  )
  assert.match(String(dropped['reason']), /certificate expired/)
  await new Promise(resolve => setTimeout(resolve, 2_500))
  assert.not.ok(await lists(site, member.peerId), 'the expired member got back in')
  await member.stop()
})

test('a second node on the same HOME is refused with one clear line', async () => {
  const result = await radmesh([
    'start',
    '--home',
    site.home,
    '--no-mdns',
    '--listen',
    '/ip4/127.0.0.1/tcp/0',
    '--http',
    '127.0.0.1:0'
  ])
  assert.ok(result.code !== 0)
  assert.match(result.stderr.trim(), /^radmesh: .*another radmesh node is running on this HOME/)
  assert.is(result.stderr.trim().split('\n').length, 1)
  assert.is((await site.api<{ ok: boolean }>('GET', '/api/health')).body.ok, true)
})

test('keys, the API token and the consortium root key are 0600', async () => {
  for (const file of ['identity.key', 'wrap.key', 'api-token']) {
    const mode = (await fs.stat(join(site.home, file))).mode & 0o777
    assert.is(mode.toString(8), '600', file)
  }
  assert.is(((await fs.stat(join(nodes.consortium.dir, 'root.key'))).mode & 0o777).toString(8), '600')
})

test('the API needs the token; health does not', async () => {
  assert.is((await fetch(`${site.http}/api/peers`)).status, 401)
  assert.is((await fetch(`${site.http}/api/peers`, { headers: { authorization: 'Bearer wrong' } })).status, 401)
  const health = (await (await fetch(`${site.http}/api/health`)).json()) as {
    ok: boolean
    peerId: string
    role: string
  }
  assert.equal(health.ok, true)
  assert.is(health.peerId, site.peerId)
  assert.is(health.role, 'site')
})

test('the one-time viewer URL signs in once and only once', async () => {
  const first = await fetch(site.viewerUrl, { redirect: 'manual' })
  assert.is(first.status, 302)
  const cookie = first.headers.get('set-cookie')?.split(';')[0] ?? ''
  assert.ok(cookie.startsWith('radmesh_session='))
  assert.is((await fetch(`${site.http}/api/peers`, { headers: { cookie } })).status, 200)
  assert.is((await fetch(site.viewerUrl, { redirect: 'manual' })).status, 401)
})

test.run()

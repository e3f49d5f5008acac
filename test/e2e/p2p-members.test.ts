/**
 * Members that misbehave on the revocation and chunk protocols, against real node processes:
 * - lists of thousands of forged revocations sent at once: the node verifies one batch of each, drops the
 *   rest, bans the sender, and /api/health keeps answering;
 * - a holder that answers a fetch with frames of another chunk than asked: refused with a code, counted,
 *   and not asked again in that fetch (it is no dropped link to retry).
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { test } from 'uvu'
import { nodesOfTests } from '../helpers/nodes.ts'
import * as assert from 'uvu/assert'
import {
  encodeRevocationList,
  MAX_REVOCATIONS_PER_MESSAGE,
  REVOCATIONS_PROTOCOL
} from '../../protocol/membership/revocations.ts'
import type { ConsortiumId, PeerIdString } from '../../protocol/ids.ts'
import { generateCt } from '../../scripts/generate-ct.ts'
import { BadMember, framed } from '../../scripts/lib/bad-member.ts'
import { storescu } from '../../scripts/lib/dcmtk.ts'
import { connected, logOf, p2pAddr } from '../../scripts/lib/node-process.ts'
import { ROOT } from '../../scripts/lib/cli.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { waitFor } from '../../scripts/lib/wait.ts'

const members: BadMember[] = []
const nodes = nodesOfTests(test, 'Bad Members')

test.after(async () => {
  await Promise.all(
    members.map(async member => {
      await member.stop()
    })
  )
})

test('4 lists of 4096 forged revocations at once: a batch of each checked, sender banned, health answers', async () => {
  const site = await nodes.start(await nodes.member('Revocation Site', 'site'))
  const member = await BadMember.admit(nodes.consortium.dir, await tempDir(), {
    name: 'Dr Forger',
    role: 'radiologist'
  })
  members.push(member)
  await member.connect(p2pAddr(site))
  const peerId = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString() as PeerIdString
  // Real signatures of something else: well-formed, so each costs a whole verification to refuse.
  const signature = Buffer.from(await member.identity.privateKey.sign(randomBytes(32))).toString('base64url')
  const consortiumId = member.certificate.consortiumId as ConsortiumId
  const forged = Array.from({ length: MAX_REVOCATIONS_PER_MESSAGE }, (_, i) => ({
    v: 1,
    consortiumId,
    peerId: `${peerId.slice(0, -4)}${String(i).padStart(4, '0')}` as PeerIdString,
    revokedAt: new Date().toISOString(),
    signature
  }))
  const list = framed(encodeRevocationList(forged))
  for (let i = 0; i < 5; i++) await fetch(`${site.http}/api/health`)
  let slowest = 0
  let probing = true
  const probe = (async () => {
    while (probing) {
      const begun = performance.now()
      await fetch(`${site.http}/api/health`)
      slowest = Math.max(slowest, performance.now() - begun)
      await new Promise(resolve => setTimeout(resolve, 20))
    }
  })()
  const send = async (): Promise<unknown> =>
    await member.send(REVOCATIONS_PROTOCOL, [list], { waitMs: 10_000 }).catch(() => undefined)
  await Promise.all([send(), send(), send(), send()])
  const lines = async (event: string): Promise<Array<Record<string, unknown>>> =>
    (await logOf(site.home)).filter(line => line['event'] === event && line['peer'] === member.peerId)
  const refused = await waitFor('the forgeries refused', async () => (await lines('invalid-revocations'))[0], 5_000)
  await new Promise(resolve => setTimeout(resolve, 500))
  probing = false
  await probe
  const invalid = refused['invalid'] as number
  process.stdout.write(`\n    [forged revocations] verified ${invalid} of a list; health ${Math.round(slowest)} ms\n`)
  assert.is(refused['code'], 'invalid-revocation')
  assert.ok(invalid <= 32, `verified ${invalid} forged revocations of one list`)
  const banned = async (): Promise<boolean> =>
    (await lines('member-dropped')).some(line => /banned/.test(String(line['reason'])))
  await waitFor('the sender banned', banned, 5_000)
  assert.ok(slowest < 1_000, `/api/health took ${Math.round(slowest)} ms`)
})

test('a holder that sends frames of another chunk than asked: bad-chunk-frame, counted, not asked again', async () => {
  const siteHome = await nodes.member('Fetch Site', 'site')
  const site = await nodes.start(siteHome, { dicom: true })
  const reader = await nodes.start(await nodes.member('Dr Careful', 'radiologist'), { peers: [p2pAddr(site)] })
  await connected(site, reader)
  const dir = await tempDir()
  const study = await generateCt({ out: dir, slices: 4, rows: 64, columns: 64, seed: 41 })
  assert.is((await storescu(site.dicomPort, 'RADMESH', ['+sd', '+r', dir])).code, 0)
  const studyUid = study.studyInstanceUid
  assert.is((await site.api('POST', `/api/studies/${studyUid}/share`, { peerIds: [reader.peerId] })).status, 200)
  const holderHome = await nodes.member('Disorderly Holder', 'radiologist')
  const script = join(ROOT, 'test/helpers/bad-holder.ts')
  const args = [script, holderHome, p2pAddr(site), studyUid, p2pAddr(reader), 'disorder']
  const bad = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] })
  try {
    const [line] = (await once(bad.stdout, 'data')) as [Buffer]
    const holder = JSON.parse(line.toString()) as { peerId: string }
    await site.kill()
    assert.is((await reader.api('POST', `/api/studies/${studyUid}/fetch`)).status, 202)
    const refused = await waitFor(
      'the disordered frames refused',
      async () => (await logOf(reader.home)).find(l => l['event'] === 'bad-chunk-frame' && l['peer'] === holder.peerId),
      15_000
    )
    assert.is(refused['code'], 'bad-chunk-frame')
    assert.ok((refused['penalty'] as number) > 0)
    await new Promise(resolve => setTimeout(resolve, 4_000))
    const lines = await logOf(reader.home)
    const count = (event: string): number =>
      lines.filter(l => l['event'] === event && l['peer'] === holder.peerId).length
    assert.is(count('bad-chunk-frame'), 1, 'asked once, then left out of the fetch')
    assert.is(count('fetch-link-lost'), 0, 'not retried as a dropped link')
  } finally {
    bad.kill('SIGKILL')
  }
})

test.run()

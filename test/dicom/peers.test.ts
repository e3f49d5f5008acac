/**
 * DICOM peers as a site names them (`AE@HOST`): parsing, HOME/dicom-peers.json, and the allow-list's matching.
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import {
  CallerAllowList,
  DICOM_PEERS_FILE,
  loadAllowedCallers,
  loadDicomPeers,
  parseAllowAe,
  parseCaller,
  parseDestination,
  parseDicomPeers
} from '../../node/dicom/peers.ts'
import { UsageError } from '../../node/errors.ts'
import { tempDir } from '../../scripts/lib/temp.ts'

test('AE@HOST: an address, a subnet or a host name; the last @ separates the AE title', () => {
  assert.equal(parseCaller('CT_ROOM1@10.20.0.15'), { aeTitle: 'CT_ROOM1', host: '10.20.0.15' })
  assert.equal(parseCaller('MODALITIES@10.20.4.0/24'), { aeTitle: 'MODALITIES', host: '10.20.4.0/24' })
  assert.equal(parseCaller('PACS@pacs.hospital.local'), { aeTitle: 'PACS', host: 'pacs.hospital.local' })
  assert.equal(parseCaller('V6@[2001:db8::7]'), { aeTitle: 'V6', host: '2001:db8::7' })
  assert.equal(parseCaller('A@B@127.0.0.1'), { aeTitle: 'A@B', host: '127.0.0.1' })
  for (const bad of [
    'CT',
    '@10.0.0.1',
    'CT@',
    'WAY_TOO_LONG_AE_TITLE@10.0.0.1',
    'BACK\\SLASH@10.0.0.1',
    'CT@10.0.0.0/33',
    'CT@10.0.0.1:104',
    'CT@host name',
    'CT@10.0.0.0/8/8'
  ]) {
    assert.throws(() => parseCaller(bad), /write AE@HOST/, bad)
  }
  assert.throws(
    () => parseAllowAe(['CT']),
    (error: Error) => error.name === 'UsageError' && error.message.startsWith('--allow-ae')
  )
})

test('HOME/dicom-peers.json: "allow" is a list of AE@HOST; no file, no list; a bad one says where', async () => {
  const home = await tempDir()
  assert.equal(await loadAllowedCallers(home), [])
  const path = join(home, DICOM_PEERS_FILE)
  await fs.writeFile(path, JSON.stringify({ allow: ['CT@10.0.0.1', 'PACS@10.0.0.0/24'], peers: ['PACS@10.0.0.9:104'] }))
  assert.equal(await loadAllowedCallers(home), [
    { aeTitle: 'CT', host: '10.0.0.1' },
    { aeTitle: 'PACS', host: '10.0.0.0/24' }
  ])
  const bad = [
    ['{', /not JSON/],
    ['[]', /must be an object/],
    ['{"allow":"CT@10.0.0.1"}', /must be a list/],
    ['{"allow":["CT"]}', /allow\[0\]/]
  ] as const
  for (const [text, why] of bad) {
    await fs.writeFile(path, text)
    const error = await loadAllowedCallers(home).then(
      () => undefined,
      (e: unknown) => e as Error & { code?: string }
    )
    assert.is(error?.code, 'RADMESH_HOME_CORRUPT', text)
    assert.match(error?.message ?? '', why)
    assert.ok(error?.message.includes(path))
  }
})

test('C-MOVE destinations: AE=HOST:PORT (or AE@), by flag and by "peers" in HOME/dicom-peers.json', async () => {
  assert.equal(parseDestination('WS=10.20.0.31:104'), { aeTitle: 'WS', host: '10.20.0.31', port: 104 })
  assert.equal(parseDestination('PACS@pacs.local:11112'), { aeTitle: 'PACS', host: 'pacs.local', port: 11112 })
  assert.equal(parseDestination('V6=[2001:db8::7]:104'), { aeTitle: 'V6', host: '2001:db8::7', port: 104 })
  for (const bad of ['WS', 'WS=10.0.0.1', 'WS=10.0.0.1:0', 'WS=10.0.0.1:70000', '=10.0.0.1:104', 'WS=bad host:104']) {
    assert.throws(() => parseDestination(bad), /AE=HOST:PORT/, bad)
  }
  assert.throws(
    () => parseDicomPeers(['WS=10.0.0.1']),
    (error: unknown) => error instanceof UsageError
  )
  const home = await tempDir()
  assert.equal(await loadDicomPeers(home), [])
  const both = { allow: ['WS@10.0.0.1'], peers: ['WS=10.0.0.1:104'] }
  await fs.writeFile(join(home, DICOM_PEERS_FILE), JSON.stringify(both))
  assert.equal(await loadDicomPeers(home), [{ aeTitle: 'WS', host: '10.0.0.1', port: 104 }])
  assert.equal(await loadAllowedCallers(home), [{ aeTitle: 'WS', host: '10.0.0.1' }])
  await fs.writeFile(join(home, DICOM_PEERS_FILE), JSON.stringify({ peers: ['WS=10.0.0.1'] }))
  const error = await loadDicomPeers(home).then(
    () => undefined,
    (e: unknown) => e as { code?: string; message: string }
  )
  assert.is(error?.code, 'RADMESH_HOME_CORRUPT')
  assert.match(error?.message ?? '', /peers\[0\] .*AE=HOST:PORT/)
})

test('the allow-list matches AE title and address exactly; IPv4-mapped IPv6 is IPv4; empty allows all', async () => {
  const list = new CallerAllowList([
    { aeTitle: 'CT', host: '10.0.0.1' },
    { aeTitle: 'CT', host: '10.0.1.0/24' },
    { aeTitle: 'V6', host: '2001:db8::7' },
    { aeTitle: 'NAMED', host: 'localhost' }
  ])
  await list.start()
  assert.ok(list.allows('CT', '10.0.0.1'))
  assert.ok(list.allows('CT', '::ffff:10.0.0.1'))
  assert.ok(list.allows('CT', '10.0.1.200'))
  assert.not.ok(list.allows('CT', '10.0.0.2'))
  assert.not.ok(list.allows('ct', '10.0.0.1'))
  assert.not.ok(list.allows('CT', undefined))
  assert.ok(list.allows('V6', '2001:0db8:0:0:0:0:0:7'))
  assert.ok(list.allows('NAMED', '127.0.0.1'))
  assert.not.ok(list.allows('NAMED', '10.0.0.1'))
  list.stop()
  const open = new CallerAllowList([])
  assert.ok(open.allows('ANYONE', '203.0.113.5'))
})

test.run()

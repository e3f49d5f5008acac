/**
 * Garbage, malformed PDUs and abrupt closes sent to the DICOM SCP: each ends only its own connection, with a
 * warning, and the SCP goes on answering DCMTK's echoscu.
 */
import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { DicomScp } from '../../node/dicom/scp.ts'
import { RecordingScp } from '../helpers/recording-scp.ts'
import { AE_TITLE, associateRq, pdu, run } from './scp-helpers.ts'

// One SCP for the whole file; onStore records every request and answers what `answer` says.
const fixture = new RecordingScp()
const { logLines } = fixture
let scp: DicomScp

test.before(async () => {
  scp = await fixture.start(AE_TITLE)
})

test.after(async () => {
  await scp.stop()
})

/** Connects, sends the chunks, and resolves with what came back once the SCP closed the connection (or after 1 s). */
async function rawSession(
  chunks: Buffer[],
  end: 'wait' | 'reset' = 'wait'
): Promise<{ reply: Buffer; closedByScp: boolean }> {
  const socket: Socket = connect(scp.port, '127.0.0.1')
  await once(socket, 'connect')
  const reply: Buffer[] = []
  let closedByScp = false
  socket.on('data', (chunk: Buffer) => {
    reply.push(chunk)
  })
  socket.on('error', () => {})
  socket.on('end', () => {
    closedByScp = true
  })
  socket.on('close', () => {
    closedByScp = true
  })
  for (const chunk of chunks) {
    socket.write(chunk)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  if (end === 'reset') {
    socket.resetAndDestroy()
  } else if (!closedByScp) {
    await Promise.race([once(socket, 'close'), new Promise(resolve => setTimeout(resolve, 1_000))])
    socket.destroy()
  }
  await new Promise(resolve => setTimeout(resolve, 50)) // let the SCP see a reset
  return { reply: Buffer.concat(reply), closedByScp }
}

const warnings = (): number => logLines.filter(line => line['level'] === 40).length

test('garbage, malformed PDUs and abrupt closes end only their own connection', async () => {
  const bad: Array<[what: string, chunks: Buffer[], end?: 'reset']> = [
    ['not DICOM at all', [Buffer.from('GET / HTTP/1.1\r\nHost: radmesh\r\n\r\n')]],
    ['a P-DATA-TF before any association', [pdu(0x04, Buffer.from([0, 0, 0, 4, 1, 3, 0xde, 0xad]))]],
    [
      'an A-ASSOCIATE-RQ whose items are garbage',
      [pdu(0x01, Buffer.from('\x00\x01\x00\x00this is not an association request, not even close.......', 'latin1'))]
    ],
    ['a PDU announcing 4 GiB', [Buffer.from([0x04, 0x00, 0xff, 0xff, 0xff, 0xff, 1, 2, 3])]],
    ['half a PDU header, then a reset', [Buffer.from([0x01, 0x00, 0x00])], 'reset'],
    [
      'an association, then a reset in the middle of a PDU',
      [associateRq(AE_TITLE), Buffer.from([0x04, 0x00, 0x00, 0x00, 0x10, 0x00])],
      'reset'
    ]
  ]
  for (const [what, chunks, end] of bad) {
    const before = warnings()
    const { closedByScp } = await rawSession(chunks, end)
    if (end === undefined) assert.ok(closedByScp, `${what}: the SCP did not close the connection`)
    assert.ok(warnings() > before, `${what}: no warning logged`)
  }

  // A garbage command inside an association: dcmjs-dimse parses it into nothing it knows and ignores it; the
  // association goes on and can still be released.
  const release = pdu(0x05, Buffer.alloc(4))
  const garbageCommand = pdu(0x04, Buffer.concat([Buffer.from([0, 0, 0, 34, 1, 3]), Buffer.alloc(32, 0xff)]))
  const { reply, closedByScp } = await rawSession([associateRq(AE_TITLE), garbageCommand, release])
  assert.is(reply[0], 0x02, 'the hand-made association request was accepted')
  assert.is(reply.at(-10), 0x06, 'the release was answered')
  assert.ok(closedByScp)

  const echo = await run('echoscu', ['-aec', AE_TITLE, '127.0.0.1', String(scp.port)])
  assert.is(echo.code, 0, echo.output)
})

test.run()

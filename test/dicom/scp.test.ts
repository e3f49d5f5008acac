/**
 * The DICOM SCP against the real DCMTK tools (Debian's echoscu and storescu): echo, a wrong called AE title,
 * failed C-STOREs reported to storescu with their error comment, and stop() while associations are open.
 * (What storescu sends arrives byte for byte: scp-bytes.test.ts; malformed input: scp-malformed.test.ts.)
 */
import { once } from 'node:events'
import { connect } from 'node:net'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { DicomScp, StoreOutcome } from '../../node/dicom/scp.ts'
import { waitFor } from '../../scripts/lib/wait.ts'
import { RecordingScp } from '../helpers/recording-scp.ts'
import { AE_TITLE, associateRq, CORPUS, readPart10, run } from './scp-helpers.ts'

// One SCP for the whole file; onStore records every request and answers what `answer` says.
const fixture = new RecordingScp()
const { received, logLines } = fixture
let scp: DicomScp

const logged = (msg: string): Array<Record<string, unknown>> => fixture.logged(msg)

test.before(async () => {
  scp = await fixture.start(AE_TITLE)
})

test.after(async () => {
  await scp.stop()
})

test('echoscu is answered; a wrong called AE title is rejected and logged at warn', async () => {
  const echo = await run('echoscu', ['-aec', AE_TITLE, '127.0.0.1', String(scp.port)])
  assert.is(echo.code, 0, echo.output)

  const wrong = await run('echoscu', ['-aec', 'SOMEONE_ELSE', '127.0.0.1', String(scp.port)])
  assert.is.not(wrong.code, 0)
  assert.match(wrong.output, /Association Rejected/)
  assert.match(wrong.output, /Called AE Title Not Recognized/)
  const warning = logged('DICOM association rejected: called AE title not recognized')
  assert.is(warning.length, 1)
  assert.is(warning[0]?.['level'], 40)
  assert.is(warning[0]?.['calledAeTitle'], 'SOMEONE_ELSE')
})

test('a failed C-STORE is reported to storescu and the rest of the association still stores', async () => {
  const files = ['CT_small.dcm', 'MR_small.dcm', 'SC_rgb_small_odd.dcm', 'reportsi.dcm', 'liver_1frame.dcm'].map(file =>
    join(CORPUS, file)
  )
  const [, refused, thrown] = files.map(file => readPart10(file).sopInstanceUid)
  fixture.answer = async request => {
    if (request.sopInstanceUid === refused) return { status: 0xa900, errorComment: 'does not match its SOP class' }
    if (request.sopInstanceUid === thrown) throw new Error('disk on fire')
    return { status: 0 }
  }
  received.length = 0
  const accepted = logged('DICOM association accepted').length
  const closedBefore = logged('DICOM association closed').length
  const store = await run('storescu', ['-R', '-nh', '-v', '-aec', AE_TITLE, '127.0.0.1', String(scp.port), ...files])
  assert.is(
    received.map(request => request.sopInstanceUid).join('\n'),
    files.map(file => readPart10(file).sopInstanceUid).join('\n'),
    'every file reached onStore, in order'
  )
  assert.is(logged('DICOM association accepted').length, accepted + 1, 'all files went in one association')
  const responses = store.output.match(/Received Store Response.*/g) ?? []
  assert.equal(
    responses,
    [
      'Received Store Response (Success)',
      'Received Store Response (Error: DataSetDoesNotMatchSOPClass)',
      'Received Store Response (Error: CannotUnderstand)',
      'Received Store Response (Success)',
      'Received Store Response (Success)'
    ],
    store.output
  )
  await waitFor('the association to close', () => logged('DICOM association closed').length > closedBefore, 2_000, 10)
  const closed = logged('DICOM association closed').at(-1)
  assert.is(closed?.['stored'], 3)
  assert.is(closed?.['failed'], 2)
  const failure = logLines.find(line => line['msg'] === 'C-STORE failed')
  assert.is(failure?.['status'], 0xc000)
})

test('the error comment reaches the SCU in the C-STORE response', async () => {
  fixture.answer = async () => {
    throw new Error('disk on fire')
  }
  const store = await run('storescu', [
    '-R',
    '-d',
    '-aec',
    AE_TITLE,
    '127.0.0.1',
    String(scp.port),
    join(CORPUS, 'CT_small.dcm')
  ])
  assert.match(store.output, /\(0000,0902\) LO \[disk on fire\]/, store.output)
  fixture.answer = async () => ({ status: 0xa900, errorComment: 'not\\what it says\u0007' })
  const refused = await run('storescu', [
    '-R',
    '-d',
    '-aec',
    AE_TITLE,
    '127.0.0.1',
    String(scp.port),
    join(CORPUS, 'CT_small.dcm')
  ])
  assert.match(refused.output, /\(0000,0902\) LO \[not what it says\]/, refused.output)
  fixture.answer = async () => ({ status: 0 })
})

test('stop closes the listener and open associations, and waits for onStore calls still running', async () => {
  // An idle association…
  const socket = connect(scp.port, '127.0.0.1')
  await once(socket, 'connect')
  socket.on('error', () => {})
  socket.write(associateRq(AE_TITLE))
  await once(socket, 'data')
  const idleClosed = once(socket, 'close')
  // …and one whose C-STORE is still in onStore.
  let finish: (outcome: StoreOutcome) => void = () => {}
  fixture.answer = async () =>
    await new Promise<StoreOutcome>(resolve => {
      finish = resolve
    })
  received.length = 0
  const store = run('storescu', ['-R', '-aec', AE_TITLE, '127.0.0.1', String(scp.port), join(CORPUS, 'CT_small.dcm')])
  await waitFor('the C-STORE to reach onStore', () => received.length === 1, 2_000, 10)

  let stopped = false
  const stopping = scp.stop().then(() => {
    stopped = true
  })
  await idleClosed
  assert.is.not((await store).code, 0, 'storescu lost its association')
  await new Promise(resolve => setTimeout(resolve, 100))
  assert.not.ok(stopped, 'stop() returned while onStore was running')
  finish({ status: 0 })
  await stopping

  const refused = await run('echoscu', ['-aec', AE_TITLE, '127.0.0.1', String(scp.port)])
  assert.is.not(refused.code, 0)
})

test.run()

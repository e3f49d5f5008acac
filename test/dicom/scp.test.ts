/**
 * The DICOM SCP against the real DCMTK tools (Debian's echoscu and storescu), sending pydicom's test corpus
 * in each file's own transfer syntax. What onStore receives must be exactly the data set bytes storescu put on
 * the wire (recorded by a relay), and those are the file's bytes after its meta header wherever storescu sends
 * the file unchanged; where it does not, the test says why and checks a copy DCMTK made itself.
 */
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { inflateRawSync } from 'node:zlib'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import {
  ACCEPTED_TRANSFER_SYNTAXES,
  type DicomScp,
  type StoreOutcome,
  type StoreRequest
} from '../../node/dicom/scp.ts'
import { runTool } from '../../scripts/lib/dcmtk.ts'
import { waitFor } from '../../scripts/lib/wait.ts'
import { RecordingScp } from '../helpers/recording-scp.ts'

const CORPUS = '/usr/lib/python3/dist-packages/pydicom/data/test_files'
const AE_TITLE = 'RADMESH'

/** Part 10 file: the data set after the File Meta Information, and the meta header's UIDs. */
interface Part10 {
  dataset: Buffer
  sopClassUid: string
  sopInstanceUid: string
  transferSyntaxUid: string
}

function readPart10(path: string): Part10 {
  const file = readFileSync(path)
  assert.is(file.toString('latin1', 128, 132), 'DICM', `${path} has no DICM prefix`)
  // (0002,0000) UL, explicit VR little endian: tag 4, VR 2, length 2, value 4.
  assert.is(file.readUInt32LE(132), 0x00000002, `${path} does not start its meta header with (0002,0000)`)
  const metaEnd = 132 + 12 + file.readUInt32LE(140)
  const values = new Map<number, string>()
  let offset = 144
  while (offset < metaEnd) {
    const element = file.readUInt16LE(offset + 2)
    const vr = file.toString('latin1', offset + 4, offset + 6)
    const long = ['OB', 'OW', 'OF', 'SQ', 'UT', 'UN'].includes(vr)
    const length = long ? file.readUInt32LE(offset + 8) : file.readUInt16LE(offset + 6)
    const start = offset + (long ? 12 : 8)
    values.set(element, file.toString('latin1', start, start + length).replace(/[\0 ]+$/, ''))
    offset = start + length
  }
  assert.is(offset, metaEnd, `${path}: meta elements do not end at the group length`)
  return {
    dataset: file.subarray(metaEnd),
    sopClassUid: values.get(0x0002) ?? '',
    sopInstanceUid: values.get(0x0003) ?? '',
    transferSyntaxUid: values.get(0x0010) ?? ''
  }
}

/**
 * Where a trailing top-level (FFFC,FFFC) Data Set Trailing Padding element starts, if the data set ends with one.
 * DCMTK's storescu never sends that element (no option keeps it), so it is the one part of a file that does not
 * arrive: the SCP is checked against the file's bytes up to it.
 */
function trailingPaddingStart(dataset: Buffer, transferSyntaxUid: string): number | undefined {
  const explicit = transferSyntaxUid !== '1.2.840.10008.1.2'
  const headerLength = explicit ? 12 : 8
  for (let start = dataset.length - headerLength; start >= Math.max(0, dataset.length - 65_536); start--) {
    if (dataset.readUInt32LE(start) !== 0xfffcfffc) continue
    if (explicit && dataset.toString('latin1', start + 4, start + 6) !== 'OB') continue
    const length = dataset.readUInt32LE(start + headerLength - 4)
    if (start + headerLength + length === dataset.length) return start
  }
  return undefined
}

interface Run {
  code: number | null
  output: string
}

async function run(command: string, args: string[]): Promise<Run> {
  const { code, stdout, stderr } = await runTool(command, args)
  return { code, output: stdout + stderr }
}

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

/**
 * Runs storescu through a TCP relay that records the data sets storescu puts on the wire (the non-command PDVs
 * of its P-DATA-TF PDUs), so the SCP can be checked against what was really sent, whatever storescu did to the file.
 */
async function storeThroughTap(path: string, flags: string[]): Promise<{ request: StoreRequest; wire: Buffer }> {
  const wire: Buffer[] = []
  let pending = Buffer.alloc(0)
  let fragments: Buffer[] = []
  const tap = (chunk: Buffer): void => {
    pending = Buffer.concat([pending, chunk])
    while (pending.length >= 6 && pending.length >= 6 + pending.readUInt32BE(2)) {
      const type = pending[0]
      const body = pending.subarray(6, 6 + pending.readUInt32BE(2))
      pending = pending.subarray(6 + body.length)
      for (let offset = 0; type === 0x04 && offset < body.length; offset += 4 + body.readUInt32BE(offset)) {
        const header = body[offset + 5] as number
        if ((header & 0x01) !== 0) continue // command
        fragments.push(body.subarray(offset + 6, offset + 4 + body.readUInt32BE(offset)))
        if ((header & 0x02) !== 0) {
          wire.push(Buffer.concat(fragments))
          fragments = []
        }
      }
    }
  }
  const relay: Server = createServer(client => {
    const upstream = connect(scp.port, '127.0.0.1')
    client.on('data', (chunk: Buffer) => {
      tap(chunk)
    })
    client.pipe(upstream).pipe(client)
    client.on('error', () => {
      upstream.destroy()
    })
    upstream.on('error', () => {
      client.destroy()
    })
  })
  relay.listen(0, '127.0.0.1')
  await once(relay, 'listening')
  try {
    received.length = 0
    const store = await run('storescu', [
      '-R',
      ...flags,
      '-v',
      '-aec',
      AE_TITLE,
      '127.0.0.1',
      String((relay.address() as AddressInfo).port),
      path
    ])
    assert.is(store.code, 0, `${path}: ${store.output}`)
    assert.match(store.output, /Received Store Response \(Success\)/, path)
    assert.is(received.length, 1, path)
    assert.is(wire.length, 1, path)
    return { request: received[0] as StoreRequest, wire: wire[0] as Buffer }
  } finally {
    relay.close()
  }
}

// storescu proposes, with -R, only the SOP classes of its files; the -x flag puts the file's own transfer
// syntax in the proposal, and storescu then sends the file in it, without conversion. `asIs` says whether
// storescu sends the file's own data set bytes, or why not.
const CORPUS_FILES: Array<{ file: string; flag: string; transferSyntaxUid: string; asIs: true | string }> = [
  { file: 'CT_small.dcm', flag: '-xe', transferSyntaxUid: '1.2.840.10008.1.2.1', asIs: true },
  { file: 'MR_small_implicit.dcm', flag: '-xi', transferSyntaxUid: '1.2.840.10008.1.2', asIs: true },
  { file: 'MR_small_bigendian.dcm', flag: '-xb', transferSyntaxUid: '1.2.840.10008.1.2.2', asIs: true },
  {
    file: 'image_dfl.dcm',
    flag: '-xd',
    transferSyntaxUid: '1.2.840.10008.1.2.1.99',
    asIs: 'storescu inflates the data set and deflates it again with its own zlib settings'
  },
  { file: 'MR_small_RLE.dcm', flag: '-xr', transferSyntaxUid: '1.2.840.10008.1.2.5', asIs: true },
  {
    file: 'JPEG2000.dcm',
    flag: '-xw',
    transferSyntaxUid: '1.2.840.10008.1.2.4.91',
    asIs: 'storescu sends its undefined-length sequences with explicit lengths'
  },
  { file: 'GDCMJ2K_TextGBR.dcm', flag: '-xv', transferSyntaxUid: '1.2.840.10008.1.2.4.90', asIs: true },
  { file: 'SC_rgb_jpeg_dcmtk.dcm', flag: '-xy', transferSyntaxUid: '1.2.840.10008.1.2.4.50', asIs: true },
  { file: 'SC_rgb_jpeg_gdcm.dcm', flag: '-xs', transferSyntaxUid: '1.2.840.10008.1.2.4.70', asIs: true },
  {
    file: 'MR_small_jpeg_ls_lossless.dcm',
    flag: '-xt',
    transferSyntaxUid: '1.2.840.10008.1.2.4.80',
    asIs: 'storescu rewrites the VR of its encapsulated Pixel Data from OW to OB'
  }
]
const DEFLATED = '1.2.840.10008.1.2.1.99'

test("storescu: each data set arrives as the bytes sent, in the file's own transfer syntax", async () => {
  fixture.answer = async () => ({ status: 0 })
  const padded: string[] = []
  for (const { file, flag, transferSyntaxUid, asIs } of CORPUS_FILES) {
    const part10 = readPart10(join(CORPUS, file))
    assert.is(part10.transferSyntaxUid, transferSyntaxUid, `${file} is not in the syntax this test means to send`)
    assert.ok(ACCEPTED_TRANSFER_SYNTAXES.includes(transferSyntaxUid))
    const { request, wire } = await storeThroughTap(join(CORPUS, file), [flag])
    assert.is(request.callingAeTitle, 'STORESCU', file)
    assert.is(request.sopClassUid, part10.sopClassUid, file)
    assert.is(request.sopInstanceUid, part10.sopInstanceUid, file)
    assert.is(request.transferSyntaxUid, transferSyntaxUid, file)
    assert.ok(Buffer.from(request.dataset).equals(wire), `${file}: data set differs from the bytes storescu sent`)
    if (asIs !== true) {
      if (transferSyntaxUid === DEFLATED)
        assert.ok(
          inflateRawSync(request.dataset).equals(inflateRawSync(part10.dataset)),
          `${file}: inflated data set differs`
        )
      continue
    }
    const sent = part10.dataset.subarray(0, trailingPaddingStart(part10.dataset, transferSyntaxUid))
    if (sent.length < part10.dataset.length) padded.push(file)
    assert.is(request.dataset.length, sent.length, `${file}: data set length`)
    assert.ok(Buffer.from(request.dataset).equals(sent), `${file}: data set bytes differ from the file's`)
  }
  // The files that do end in trailing padding, so the padding rule is not a blanket excuse.
  assert.equal(padded, ['CT_small.dcm', 'MR_small_RLE.dcm'])
})

// Where storescu does not send a corpus file as is, a copy made by DCMTK itself is sent unchanged: these go
// byte for byte from file to onStore. The deflated copy is made at level 7, an even-length stream (storescu
// pads an odd one), and sent at the same level.
const DCMTK_COPIES: Array<{ source: string; tool: string[]; flags: string[]; transferSyntaxUid: string }> = [
  {
    source: 'image_dfl.dcm',
    tool: ['dcmconv', '+td', '+cl', '7'],
    flags: ['-xd', '+cl', '7'],
    transferSyntaxUid: DEFLATED
  },
  {
    source: 'MR_small_implicit.dcm',
    tool: ['dcmcjpls', '+el'],
    flags: ['-xt'],
    transferSyntaxUid: '1.2.840.10008.1.2.4.80'
  },
  {
    source: 'SC_rgb_small_odd.dcm',
    tool: ['dcmcjpls', '+en'],
    flags: ['-xu'],
    transferSyntaxUid: '1.2.840.10008.1.2.4.81'
  }
]

test('storescu: files made by DCMTK arrive byte for byte (deflate, JPEG-LS lossless and near-lossless)', async () => {
  fixture.answer = async () => ({ status: 0 })
  const dir = await mkdtemp(join(tmpdir(), 'radmesh-scp-'))
  try {
    for (const { source, tool, flags, transferSyntaxUid } of DCMTK_COPIES) {
      const copy = join(dir, `${transferSyntaxUid}.dcm`)
      const [command = '', ...args] = tool
      const convert = await run(command, [...args, join(CORPUS, source), copy])
      assert.is(convert.code, 0, convert.output)
      const part10 = readPart10(copy)
      assert.is(part10.transferSyntaxUid, transferSyntaxUid)
      const { request, wire } = await storeThroughTap(copy, flags)
      assert.is(request.transferSyntaxUid, transferSyntaxUid)
      assert.is(request.sopInstanceUid, part10.sopInstanceUid)
      assert.ok(
        Buffer.from(request.dataset).equals(wire),
        `${transferSyntaxUid}: data set differs from the bytes storescu sent`
      )
      assert.ok(
        Buffer.from(request.dataset).equals(part10.dataset),
        `${transferSyntaxUid}: data set bytes differ from the file's`
      )
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
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

/** An A-ASSOCIATE-RQ for Verification with implicit VR little endian, built by hand. */
function associateRq(calledAeTitle: string): Buffer {
  const item = (type: number, body: Buffer): Buffer => {
    const header = Buffer.alloc(4)
    header.writeUInt8(type, 0)
    header.writeUInt16BE(body.length, 2)
    return Buffer.concat([header, body])
  }
  const ae = (title: string): Buffer => Buffer.from(title.padEnd(16, ' '), 'latin1')
  const maxLength = Buffer.alloc(4)
  maxLength.writeUInt32BE(16384)
  const body = Buffer.concat([
    Buffer.from([0x00, 0x01, 0x00, 0x00]),
    ae(calledAeTitle),
    ae('GARBAGE'),
    Buffer.alloc(32),
    item(0x10, Buffer.from('1.2.840.10008.3.1.1.1')),
    item(
      0x20,
      Buffer.concat([
        Buffer.from([1, 0, 0, 0]),
        item(0x30, Buffer.from('1.2.840.10008.1.1')),
        item(0x40, Buffer.from('1.2.840.10008.1.2'))
      ])
    ),
    item(0x50, item(0x51, maxLength))
  ])
  return pdu(0x01, body)
}

function pdu(type: number, body: Buffer): Buffer {
  const header = Buffer.alloc(6)
  header.writeUInt8(type, 0)
  header.writeUInt32BE(body.length, 2)
  return Buffer.concat([header, body])
}

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

/**
 * The DICOM SCP against the real DCMTK tools (Debian's echoscu and storescu), sending pydicom's test corpus
 * in each file's own transfer syntax. What onStore receives must be exactly the data set bytes storescu put on
 * the wire (recorded by a relay), and those are the file's bytes after its meta header wherever storescu sends
 * the file unchanged; where it does not, the test says why and checks a copy DCMTK made itself.
 */
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { type AddressInfo, connect, createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { inflateRawSync } from 'node:zlib'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { ACCEPTED_TRANSFER_SYNTAXES, type DicomScp, type StoreRequest } from '../../node/dicom/scp.ts'
import { RecordingScp } from '../helpers/recording-scp.ts'
import { AE_TITLE, CORPUS, readPart10, run } from './scp-helpers.ts'

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

// One SCP for the whole file; onStore records every request and answers what `answer` says.
const fixture = new RecordingScp()
const { received } = fixture
let scp: DicomScp

test.before(async () => {
  scp = await fixture.start(AE_TITLE)
})

test.after(async () => {
  await scp.stop()
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

test.run()

/**
 * What the DICOM SCP tests against DCMTK (scp*.test.ts) share: pydicom's test corpus, Part 10 files read just
 * enough, DCMTK tools run with their output, and an A-ASSOCIATE-RQ built by hand.
 */
import { readFileSync } from 'node:fs'
import * as assert from 'uvu/assert'
import { runTool } from '../../scripts/lib/dcmtk.ts'

export const CORPUS = '/usr/lib/python3/dist-packages/pydicom/data/test_files'
export const AE_TITLE = 'RADMESH'

/** Part 10 file: the data set after the File Meta Information, and the meta header's UIDs. */
export interface Part10 {
  dataset: Buffer
  sopClassUid: string
  sopInstanceUid: string
  transferSyntaxUid: string
}

export function readPart10(path: string): Part10 {
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

export interface Run {
  code: number | null
  output: string
}

export async function run(command: string, args: string[]): Promise<Run> {
  const { code, stdout, stderr } = await runTool(command, args)
  return { code, output: stdout + stderr }
}

/** An A-ASSOCIATE-RQ for Verification with implicit VR little endian, built by hand. */
export function associateRq(calledAeTitle: string): Buffer {
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

export function pdu(type: number, body: Buffer): Buffer {
  const header = Buffer.alloc(6)
  header.writeUInt8(type, 0)
  header.writeUInt32BE(body.length, 2)
  return Buffer.concat([header, body])
}

/**
 * `npm run fuzz -- dicom`: mutated corpus files and generated CT slices sent to a node's DICOM port over
 * C-STORE by a minimal SCU (./scu.ts), one association per case, with mutations of the data set (./mutate.ts),
 * deflate bombs under the deflated transfer syntax, and mutations of the PDU stream itself. Each case must be
 * answered within 5 s; what the node accepted is then opened through DICOMweb (metadata, frames, bulk data),
 * as a viewer would, and its bytes checked again at the end.
 */
import { TRANSFER_SYNTAX } from '../../node/dicom/dictionary.ts'
import { encodeAssociateRq } from '../../node/dicom/dimse/pdu.ts'
import {
  type CaseResult,
  type Kind,
  type KindOptions,
  type KindTally,
  loadSamples,
  runKind,
  type Sample
} from './common.ts'
import { DEFLATED_LE, EXPLICIT_LE, IMPLICIT_LE, refreshUids, syntaxOf, uidsOf } from './dataset.ts'
import { type InstanceRef, type Ledger, openAccepted } from './ledger.ts'
import { deflateBomb, deflatedVariant } from './deflate.ts'
import { mutateDataset } from './mutate.ts'
import type { Rng } from './rng.ts'
import { associateRq, type StoreAnswer, storeOnce } from './scu.ts'
import type { Target } from './target.ts'

const AE_TITLE = 'RADMESH'
const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2'
const SECONDARY_CAPTURE = '1.2.840.10008.5.1.4.1.1.7'

/** A C-STORE status that means stored: success, or a warning (PS3.4 B.2.3). */
const isStored = (status: number): boolean =>
  status === 0 || (status >= 0xb000 && status <= 0xbfff) || status === 0x0001

/** The PDUs of a stream: where each starts, its type and its length field. */
function pdusOf(stream: Buffer): Array<{ offset: number; type: number; length: number }> {
  const out: Array<{ offset: number; type: number; length: number }> = []
  for (let offset = 0; offset + 6 <= stream.length; ) {
    const length = stream.readUInt32BE(offset + 2)
    out.push({ offset, type: stream[offset] as number, length })
    offset += 6 + length
  }
  return out
}

interface PduMutation {
  name: string
  /** the SCP may be left waiting for bytes that never come: half-close after sending */
  end: boolean
  apply: (command: Buffer, data: Buffer, rng: Rng) => Buffer
}

const PDU_MUTATIONS: readonly PduMutation[] = [
  {
    name: 'a header byte of a PDU changed',
    end: true,
    apply: (command, data, rng) => {
      const stream = Buffer.concat([command, data])
      const pdu = rng.pick(pdusOf(stream))
      stream[pdu.offset + rng.int(12)] = rng.u32() & 0xff
      return stream
    }
  },
  {
    name: 'a data PDV on a context not accepted',
    end: true,
    apply: (command, data, rng) => {
      const stream = Buffer.from(data)
      const pdu = rng.pick(pdusOf(stream))
      stream[pdu.offset + 10] = rng.pick([0, 3, 2, 255])
      return Buffer.concat([command, stream])
    }
  },
  {
    name: 'the data set flagged as a command',
    end: true,
    apply: (command, data) => {
      const stream = Buffer.from(data)
      for (const pdu of pdusOf(stream)) stream[pdu.offset + 11] = (stream[pdu.offset + 11] as number) | 1
      return Buffer.concat([command, stream])
    }
  },
  {
    name: 'no last fragment, then A-RELEASE-RQ',
    end: false,
    apply: (command, data) => {
      const stream = Buffer.from(data)
      const last = pdusOf(stream).at(-1)
      if (last !== undefined) stream[last.offset + 11] = 0
      return Buffer.concat([command, stream, Buffer.from([5, 0, 0, 0, 0, 4, 0, 0, 0, 0])])
    }
  },
  {
    name: 'a PDU length field lies',
    end: true,
    apply: (command, data, rng) => {
      const stream = Buffer.concat([command, data])
      const pdu = rng.pick(pdusOf(stream))
      const length = rng.pick([0, 1, 5, pdu.length + 1, Math.max(0, pdu.length - 1), 0x7fffffff, 0xffffffff, 1_048_577])
      stream.writeUInt32BE(length, pdu.offset + 2)
      return stream
    }
  },
  {
    name: 'a PDV length field lies',
    end: true,
    apply: (command, data, rng) => {
      const stream = Buffer.concat([command, data])
      const pdu = rng.pick(pdusOf(stream))
      stream.writeUInt32BE(rng.pick([0, 1, 2, 3, pdu.length - 3, pdu.length + 10, 0xffffffff]) >>> 0, pdu.offset + 6)
      return stream
    }
  },
  { name: 'data set before its command', end: true, apply: (command, data) => Buffer.concat([data, command]) },
  { name: 'the command twice', end: true, apply: (command, data) => Buffer.concat([command, command, data]) },
  {
    name: 'garbage after',
    end: true,
    apply: (command, data, rng) => Buffer.concat([command, data, rng.bytes(rng.size(4096))])
  },
  {
    name: 'an unknown PDU type in between',
    end: true,
    apply: (command, data, rng) =>
      Buffer.concat([command, Buffer.from([rng.pick([0, 8, 9, 0x7f, 0xff]), 0, 0, 0, 0, 4, 1, 2, 3, 4]), data])
  },
  {
    name: 'a second A-ASSOCIATE-RQ',
    end: true,
    apply: (command, data) => {
      const context = { id: 1, abstractSyntax: CT_IMAGE_STORAGE, transferSyntaxes: [EXPLICIT_LE] }
      return Buffer.concat([command, encodeAssociateRq(associateRq(AE_TITLE, 'AGAIN', [context])), data])
    }
  },
  {
    name: 'cut in the middle, then closed',
    end: true,
    apply: (command, data, rng) => {
      const stream = Buffer.concat([command, data])
      return stream.subarray(0, rng.int(stream.length))
    }
  }
]

/** One case's input: which sample, what was done to it, and the C-STORE to send. */
interface Input {
  what: string[]
  sopClassUid: string
  sopInstanceUid: string
  transferSyntaxUid: string
  dataset: Buffer
  ref: Partial<InstanceRef>
  maxPdu?: number
  pdu?: PduMutation
}

function makeInput(sample: Sample, rng: Rng, samples: Sample[]): Input {
  const file = Buffer.from(sample.file)
  const what = [sample.name]
  // Mostly a new instance; sometimes one that claims a known-good instance's UIDs (it must not replace it).
  const collide = sample.knownGood && rng.chance(0.08)
  const fresh = collide ? {} : refreshUids(file, sample, rng)
  if (collide) what.push('keeps the known-good UIDs')
  let dataset: Buffer = file.subarray(sample.datasetOffset)
  let transferSyntaxUid = sample.transferSyntaxUid
  const plain = transferSyntaxUid === EXPLICIT_LE
  const roll = rng.int(100)
  if (roll < 6 && plain) {
    const mib = rng.pick([64, 256, 1024, 4095, 8190])
    const bomb = deflateBomb(dataset, mib, rng)
    dataset = bomb.dataset
    transferSyntaxUid = DEFLATED_LE
    what.push(bomb.what)
  } else if (roll < 10 && plain) {
    const source = rng.chance(0.5) ? dataset : mutateDataset(dataset, transferSyntaxUid, rng).dataset
    const variant = deflatedVariant(source, rng)
    dataset = variant.dataset
    transferSyntaxUid = DEFLATED_LE
    what.push(variant.what)
  } else if (roll < 88) {
    const mutated = mutateDataset(dataset, transferSyntaxUid, rng)
    dataset = mutated.dataset
    what.push(...mutated.what)
  }
  // else: the data set as it is, the PDUs mutated below
  if (rng.chance(0.04)) {
    // The data set in another syntax than the one negotiated.
    transferSyntaxUid = rng.pick([
      IMPLICIT_LE,
      EXPLICIT_LE,
      TRANSFER_SYNTAX.explicitBig,
      TRANSFER_SYNTAX.jpegBaseline,
      TRANSFER_SYNTAX.rle
    ])
    what.push(`sent as ${transferSyntaxUid}`)
  }
  const read = uidsOf(dataset, syntaxOf(transferSyntaxUid))
  let sopInstanceUid = read.sop ?? fresh.sop ?? sample.sopInstanceUid
  if (rng.chance(0.04)) {
    sopInstanceUid = rng.chance(0.5) ? rng.pick(samples).sopInstanceUid || '1.2.3' : `2.25.${rng.u32()}${rng.u32()}`
    what.push(`command names SOP instance ${sopInstanceUid}`)
  }
  let sopClassUid = sample.sopClassUid || SECONDARY_CAPTURE
  if (rng.chance(0.03)) {
    sopClassUid = rng.pick([
      CT_IMAGE_STORAGE,
      '1.2.840.10008.5.1.4.1.1.4',
      '1.2.3.4.5',
      '1.2.840.10008.5.1.4.1.1.88.11'
    ])
    what.push(`SOP class ${sopClassUid}`)
  }
  const input: Input = {
    what,
    sopClassUid,
    sopInstanceUid: sopInstanceUid === '' ? '2.25.1' : sopInstanceUid,
    transferSyntaxUid,
    dataset,
    ref: {
      ...((read.study ?? fresh.study) === undefined ? {} : { study: read.study ?? fresh.study }),
      ...((read.series ?? fresh.series) === undefined ? {} : { series: read.series ?? fresh.series }),
      sop: sopInstanceUid
    }
  }
  if (roll >= 88 || rng.chance(0.05)) {
    if (rng.chance(0.3)) {
      input.maxPdu = rng.pick([7, 8, 14, 64, 1000, 16_384])
      what.push(`PDUs of ${input.maxPdu} bytes`)
    } else {
      input.pdu = rng.pick(PDU_MUTATIONS)
      what.push(`PDU stream: ${input.pdu.name}`)
    }
  }
  return input
}

function describe(answer: StoreAnswer): string {
  switch (answer.answer) {
    case 'status': {
      const comment = answer.comment === undefined ? '' : ` (${answer.comment})`
      return `status 0x${answer.status.toString(16).padStart(4, '0')}${comment}`
    }
    case 'rejected':
      return `A-ASSOCIATE-RJ ${answer.rj.result}/${answer.rj.source}/${answer.rj.reason}`
    case 'aborted':
      return `A-ABORT ${answer.abort.source}/${answer.abort.reason}`
    case 'timeout':
      return `no answer in 5 s (${answer.stage})`
    case 'garbage':
      return `not a PDU: ${answer.reason}`
    default:
      return answer.answer
  }
}

async function store(target: Target, input: Input, rng: Rng): Promise<StoreAnswer> {
  const pdu = input.pdu
  return await storeOnce({
    port: target.node.dicomPort,
    calledAeTitle: AE_TITLE,
    callingAeTitle: 'FUZZER',
    sopClassUid: input.sopClassUid,
    sopInstanceUid: input.sopInstanceUid,
    transferSyntaxUid: input.transferSyntaxUid,
    dataset: input.dataset,
    timeoutMs: 5_000,
    ...(input.maxPdu === undefined ? {} : { maxPdu: input.maxPdu }),
    ...(pdu === undefined
      ? {}
      : { pdus: (command: Buffer, data: Buffer) => pdu.apply(command, data, rng), endAfterSend: pdu.end })
  })
}

function dicomKind(): Kind {
  let samples: Sample[] = []
  let ledger: Ledger
  return {
    name: 'dicom',
    async setup(target, theLedger, say) {
      ledger = theLedger
      samples = (await loadSamples()).filter(sample => sample.datasetOffset < sample.file.length)
      for (const sample of samples.filter(s => s.knownGood)) {
        const dataset = sample.file.subarray(sample.datasetOffset)
        // The data set's own SOP Instance UID (rtplan.dcm's meta header names another).
        const { study, series, sop } = uidsOf(dataset, syntaxOf(sample.transferSyntaxUid))
        const answer = await storeOnce({
          port: target.node.dicomPort,
          calledAeTitle: AE_TITLE,
          callingAeTitle: 'FUZZER',
          sopClassUid: sample.sopClassUid,
          sopInstanceUid: sop ?? sample.sopInstanceUid,
          transferSyntaxUid: sample.transferSyntaxUid,
          dataset,
          timeoutMs: 30_000
        })
        const stored = answer.answer === 'status' && isStored(answer.status)
        if (!stored || study === undefined || series === undefined || sop === undefined) {
          say(`known-good ${sample.name} was not stored: ${describe(answer)}`)
          continue
        }
        if ((await ledger.record(target, { study, series, sop }, sample.name, true)) === undefined) {
          say(`known-good ${sample.name} cannot be retrieved`)
        }
      }
    },
    async run(target, rng) {
      const input = makeInput(rng.pick(samples), rng, samples)
      const what = input.what.join('; ')
      const answer = await store(target, input, rng)
      if (answer.answer === 'timeout') return { outcome: 'hung', what, why: describe(answer) }
      if (answer.answer === 'garbage') return { outcome: 'unclear', what, why: describe(answer) }
      if (answer.answer !== 'status' || !isStored(answer.status)) return { outcome: 'refused', what }
      const { study, series, sop } = input.ref
      const result: CaseResult = { outcome: 'accepted', what }
      if (study === undefined || series === undefined || sop === undefined) return result
      const opened = await openAccepted(target, ledger, [{ study, series, sop }], `case instance ${sop}`)
      if (opened.hung !== undefined) return { outcome: 'hung', what, why: `accepted, then ${opened.hung}` }
      if (opened.unclear !== undefined) return { outcome: 'unclear', what, why: `accepted, then ${opened.unclear}` }
      return result
    }
  }
}

export async function runDicomFuzz(options: KindOptions): Promise<KindTally> {
  return await runKind(dicomKind(), options)
}

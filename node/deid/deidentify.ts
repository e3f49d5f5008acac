/**
 * One de-identified copy of a study, instance by instance (PS3.15 E.1.1, with the options of profile.ts). A
 * `Deidentifier` is made per copy and given every instance of the study: its UIDs are derived from the copy's
 * secret, so one original UID becomes the same new UID in every instance (Study, Series, Frame of Reference,
 * and every reference to them in sequences), and its dates move by the same number of days. The mapping back
 * (`uidMap`, `dateOffsetDays`) stays with whoever made the copy.
 *
 * New UIDs are 2.25 UIDs (PS3.5 B.2): a UUID, version 8 (RFC 9562, custom), made of HMAC-SHA-256(secret,
 * original UID), written as a decimal integer. Pixel data is carried through byte for byte.
 */
import { createHmac, randomBytes, randomInt } from 'node:crypto'
import { tagName } from '../dicom/dictionary.ts'
import { withoutTrailingPadding } from '../dicom/padding.ts'
import { type DicomFile, type Node, readDicomFile, writeDicomFile } from './dataset.ts'
import { DeidentificationError } from './errors.ts'
import { type Action, actionFor, dummyValue, isStandardUid, type ProfileOptions, shiftDates } from './profile.ts'

export interface DeidentifyOptions extends ProfileOptions {
  /**
   * The site says the burned-in annotation of these images holds nothing that identifies the patient. Without
   * it, an image whose Burned In Annotation (0028,0301) is YES is refused.
   */
  burnedInAnnotationClean?: boolean
  /** Patient's Name and Patient ID of the copy (the table's Z allows a dummy value); default DEID-<8 hex digits> */
  pseudonym?: string
  /** the copy's secret, at least 16 bytes: the same secret gives the same UIDs (default: random) */
  secret?: Uint8Array
  /** the days dates are moved by with the Modified Dates option (default: random, 1 to 10 years back) */
  dateOffsetDays?: number
}

/** One instance of the copy. */
export interface DeidentifiedInstance {
  /** the Part 10 file of the copy */
  bytes: Buffer
  sopClassUid: string
  sopInstanceUid: string
  studyInstanceUid: string
  seriesInstanceUid: string
  /** the original's Study Instance UID (stays at the site) */
  originalStudyInstanceUid: string
}

const T = {
  sopClassUid: 0x00080016,
  sopInstanceUid: 0x00080018,
  codeValue: 0x00080100,
  codingSchemeDesignator: 0x00080102,
  codeMeaning: 0x00080104,
  patientName: 0x00100010,
  patientId: 0x00100020,
  patientIdentityRemoved: 0x00120062,
  deidentificationMethod: 0x00120063,
  deidentificationMethodCodeSequence: 0x00120064,
  studyInstanceUid: 0x0020000d,
  seriesInstanceUid: 0x0020000e,
  burnedInAnnotation: 0x00280301,
  longitudinalTemporalInformationModified: 0x00280303
} as const

/** PS3.16 CID 7050 "De-identification Method", the codes of what radmesh does. */
const METHOD_CODES = {
  basic: ['113100', 'Basic Application Confidentiality Profile'],
  full: ['113106', 'Retain Longitudinal Temporal Information Full Dates Option'],
  modified: ['113107', 'Retain Longitudinal Temporal Information Modified Dates Option'],
  patient: ['113108', 'Retain Patient Characteristics Option']
} as const

/** Not private, not a group length, not a curve or overlay: an attribute the table or its rules decide. */
const isStandardAttribute = (tag: number): boolean =>
  ((tag >>> 16) & 1) === 0 && (tag & 0xffff) !== 0 && ![0x5000, 0x6000].includes((tag >>> 16) & 0xff00)

const PADDING: Readonly<Record<string, string>> = { UI: '\0' }

/** A value node holding `text`, padded to an even length as its VR pads. */
function textNode(tag: number, vr: string, text: string): Node {
  const bytes = Buffer.from(text, 'latin1')
  const padded = bytes.byteLength % 2 === 0 ? bytes : Buffer.concat([bytes, Buffer.from(PADDING[vr] ?? ' ')])
  return { kind: 'value', tag, vr, bytes: padded }
}

const textOf = (node: Node): string =>
  node.kind === 'value' ? withoutTrailingPadding(Buffer.from(node.bytes).toString('latin1')).trim() : ''

const codeItem = ([value, meaning]: readonly [string, string]): Node[] => [
  textNode(T.codeValue, 'SH', value),
  textNode(T.codingSchemeDesignator, 'SH', 'DCM'),
  textNode(T.codeMeaning, 'LO', meaning)
]

export class Deidentifier {
  readonly dateOffsetDays: number
  readonly pseudonym: string
  readonly #options: DeidentifyOptions
  readonly #secret: Uint8Array
  readonly #uids = new Map<string, string>()

  constructor(options: DeidentifyOptions = {}) {
    this.#options = options
    this.#secret = options.secret ?? randomBytes(32)
    if (this.#secret.byteLength < 16) throw new RangeError('a de-identification secret has at least 16 bytes')
    this.dateOffsetDays = options.dateOffsetDays ?? -randomInt(365, 3651)
    const tag = createHmac('sha256', this.#secret).update('pseudonym').digest('hex').slice(0, 8).toUpperCase()
    this.pseudonym = options.pseudonym ?? `DEID-${tag}`
  }

  /** The UID of the copy for an original UID: the same one every time for this copy. */
  uid(original: string): string {
    const known = this.#uids.get(original)
    if (known !== undefined) return known
    const bytes = createHmac('sha256', this.#secret).update(original).digest().subarray(0, 16)
    bytes[6] = ((bytes[6] as number) & 0x0f) | 0x80 // version 8
    bytes[8] = ((bytes[8] as number) & 0x3f) | 0x80 // variant 10
    const uid = `2.25.${BigInt(`0x${bytes.toString('hex')}`).toString(10)}`
    this.#uids.set(original, uid)
    return uid
  }

  /** Every UID replaced so far, original to copy: the mapping back, which never leaves the site. */
  get uidMap(): ReadonlyMap<string, string> {
    return this.#uids
  }

  /** De-identifies one Part 10 file of the study. DeidentificationError when it must not or cannot be. */
  instance(part10: Uint8Array): DeidentifiedInstance {
    const file = readDicomFile(part10)
    const find = (tag: number) => file.dataset.find(node => node.tag === tag)
    const required = (tag: number, name: string): string => {
      const node = find(tag)
      const text = node === undefined ? '' : textOf(node)
      if (text === '') throw new DeidentificationError('missing-attribute', `${name} ${tagName(tag)} is missing`)
      return text
    }
    const burnedIn = find(T.burnedInAnnotation)
    const burnedInYes = burnedIn !== undefined && textOf(burnedIn).toUpperCase() === 'YES'
    if (burnedInYes && this.#options.burnedInAnnotationClean !== true) {
      throw new DeidentificationError(
        'burned-in-annotation',
        `SOP instance ${required(T.sopInstanceUid, 'SOP Instance UID')} has Burned In Annotation YES: its pixels may ` +
          'show who the patient is. It is not sent; if the site has checked that the annotation is clean, ' +
          'share again saying so'
      )
    }
    const sopClassUid = required(T.sopClassUid, 'SOP Class UID')
    const originalStudyInstanceUid = required(T.studyInstanceUid, 'Study Instance UID')
    required(T.sopInstanceUid, 'SOP Instance UID')
    const copy: DicomFile = { ...file, dataset: [...this.#clean(file.dataset, true), ...this.#marks()] }
    const after = (tag: number) => textOf(copy.dataset.find(node => node.tag === tag) as Node)
    const sopInstanceUid = after(T.sopInstanceUid)
    return {
      bytes: writeDicomFile(copy, sopClassUid, sopInstanceUid),
      sopClassUid,
      sopInstanceUid,
      studyInstanceUid: after(T.studyInstanceUid),
      seriesInstanceUid: after(T.seriesInstanceUid),
      originalStudyInstanceUid
    }
  }

  /** The attributes that say the copy is de-identified, and how (PS3.15 E.1.1 steps 4 and 5, PS3.3 C.7.1.1). */
  #marks(): Node[] {
    const { retainDates, retainPatientCharacteristics } = this.#options
    const codes: Array<readonly [string, string]> = [METHOD_CODES.basic]
    if (retainDates !== undefined) codes.push(METHOD_CODES[retainDates])
    if (retainPatientCharacteristics === true) codes.push(METHOD_CODES.patient)
    const methods = ['radmesh', ...codes.map(([, meaning]) => meaning)]
    if (this.#options.burnedInAnnotationClean === true) methods.push('Burned in annotation attested clean by site')
    const temporal = retainDates === undefined ? 'REMOVED' : retainDates === 'full' ? 'UNMODIFIED' : 'MODIFIED'
    return [
      textNode(T.patientIdentityRemoved, 'CS', 'YES'),
      textNode(T.deidentificationMethod, 'LO', methods.join('\\')),
      { kind: 'sequence', tag: T.deidentificationMethodCodeSequence, vr: 'SQ', items: codes.map(codeItem) },
      textNode(T.longitudinalTemporalInformationModified, 'CS', temporal)
    ]
  }

  /** `dummyItems`: the nodes of an item of a sequence given a dummy value. */
  #clean(nodes: Node[], top: boolean, dummyItems = false): Node[] {
    const out: Node[] = []
    for (const node of nodes) {
      if (top && node.tag >= T.patientIdentityRemoved && node.tag <= T.deidentificationMethodCodeSequence) continue
      if (top && node.tag === T.longitudinalTemporalInformationModified) continue
      if (node.kind === 'pixels' || node.kind === 'encapsulated') {
        out.push(node)
        continue
      }
      let action = actionFor(node.tag, node.vr, this.#options)
      const removed = action === 'remove' || action === 'empty'
      if (dummyItems && removed && isStandardAttribute(node.tag) && dummyValue(node.vr) !== undefined) action = 'dummy'
      const cleaned = this.#apply(node, action, top)
      if (cleaned !== undefined) out.push(cleaned)
    }
    return out
  }

  #apply(node: Node & { kind: 'value' | 'sequence' }, action: Action, top: boolean): Node | undefined {
    if (node.kind === 'sequence') {
      if (action === 'remove') return undefined
      if (action === 'empty') return { ...node, items: [] }
      if (action === 'uid')
        throw new DeidentificationError('unsupported', `${tagName(node.tag)} is a sequence, not a UID`)
      return { ...node, items: node.items.map(item => this.#clean(item, false, action === 'dummy')) }
    }
    const { tag, vr } = node
    // A pseudonym, so a reader can tell copies apart; as a name, its first '-' separates family and given names.
    if (top && tag === T.patientId && action === 'empty') return textNode(tag, vr, this.pseudonym)
    if (top && tag === T.patientName && action === 'empty') return textNode(tag, vr, this.pseudonym.replace('-', '^'))
    switch (action) {
      case 'remove':
        return undefined
      case 'empty':
        return { ...node, bytes: new Uint8Array(0) }
      case 'keep':
        return node
      case 'uid':
        return this.#replaceUids(node)
      case 'dummy': {
        if (vr === 'UI') return this.#replaceUids(node)
        const dummy = dummyValue(vr)
        if (dummy !== undefined) return textNode(tag, vr, dummy)
        return { ...node, bytes: new Uint8Array(node.bytes.byteLength) }
      }
      case 'clean':
        if (vr === 'DA' || vr === 'DT') return textNode(tag, vr, shiftDates(textOf(node), vr, this.dateOffsetDays))
        if (vr === 'TM') return node
        if (vr === 'UI') return this.#replaceUids(node)
        return undefined
    }
  }

  #replaceUids(node: Node & { kind: 'value' }): Node {
    const text = textOf(node)
    if (text === '') return node
    const uids = text.split('\\').map(one => {
      const uid = withoutTrailingPadding(one).trim()
      return uid === '' || isStandardUid(uid) ? uid : this.uid(uid)
    })
    return textNode(node.tag, 'UI', uids.join('\\'))
  }
}

/** De-identifies a whole study as one copy; the `Deidentifier` keeps the mapping back. */
export function deidentifyStudy(
  instances: Iterable<Uint8Array>,
  options: DeidentifyOptions = {}
): { deidentifier: Deidentifier; instances: DeidentifiedInstance[] } {
  const deidentifier = new Deidentifier(options)
  return { deidentifier, instances: [...instances].map(bytes => deidentifier.instance(bytes)) }
}

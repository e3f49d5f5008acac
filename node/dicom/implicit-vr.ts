/**
 * The VR of an element the data set does not name it for (implicit VR, or UN): from the standard data
 * dictionary, dcmjs's; a private tag through its Private Creator; the dictionary's "either" VRs resolved as
 * PS3.5 Annex A does for implicit VR data sets.
 */
import { createRequire } from 'node:module'
import { hex4, hex8, isVr, UNDEFINED_LENGTH } from './dictionary.ts'

// dcmjs ships no typings: the one thing used from it, typed here. Its dictionary is a proxy keyed by
// "(GGGG,EEEE)", "GGGGEEEE" or, for private tags, '(GGGG,"CREATOR",EE)'; vr is a VR, or "ox" (OB or OW),
// "xs" (US or SS), "lt" (US, SS or OW).
interface DictionaryEntry {
  vr?: string
}
interface Dcmjs {
  data: { DicomMetaDictionary: { dictionary: Record<string, DictionaryEntry | undefined> } }
}
const dictionary = (createRequire(import.meta.url)('dcmjs') as Dcmjs).data.DicomMetaDictionary.dictionary

/** What a data set level has said so far that the VRs of the elements after it depend on. */
export interface VrContext {
  /** Private Creator values, by (group << 8 | block) */
  creators: Map<number, string>
  /** Pixel Representation (0028,0103): 1 makes the "xs" VRs SS */
  pixelRepresentation: number
}

/** The dictionary's VR for a tag (private tags through their creator), or undefined. */
export function dictionaryVr(tag: number, context: VrContext): string | undefined {
  const group = tag >>> 16
  const element = tag & 0xffff
  if ((group & 1) === 0) return dictionary[hex8(tag)]?.vr
  if (element === 0x0000) return 'UL'
  if (element >= 0x0010 && element <= 0x00ff) return 'LO'
  const creator = context.creators.get((group << 8) | (element >>> 8))
  if (creator === undefined) return undefined
  const low = (element & 0xff).toString(16).padStart(2, '0')
  const entry =
    dictionary[`(${hex4(group)},"${creator}",${low.toUpperCase()})`] ??
    dictionary[`(${hex4(group)},"${creator}",${low})`]
  return entry?.vr
}

/** Resolves the dictionary's "either" VRs as PS3.5 Annex A does for implicit VR data sets. */
export function resolveVr(vr: string | undefined, context: VrContext): string | undefined {
  if (vr === undefined) return undefined
  if (vr === 'ox' || vr === 'lt') return 'OW'
  if (vr === 'xs') return context.pixelRepresentation === 1 ? 'SS' : 'US'
  if (isVr(vr)) return vr
  return 'UN'
}

/** The VR an implicit VR element is read as: the dictionary's, SQ for an unknown one of undefined length, else UN. */
export function implicitVr(tag: number, length: number, context: VrContext): string {
  if ((tag & 0xffff) === 0x0000) return 'UL'
  const vr = resolveVr(dictionaryVr(tag, context), context)
  if (vr !== undefined) return vr
  if (length === UNDEFINED_LENGTH) return 'SQ'
  return 'UN'
}

/**
 * radmesh's own implementation UID and version name, and what a valid UID looks like (PS3.5 9.1). The UIDs of
 * transfer syntaxes are in the dictionary (dictionary.ts).
 */

/** radmesh's implementation class UID (2.25 root, a UUID made once for radmesh) and version name. */
export const IMPLEMENTATION_CLASS_UID = '2.25.238471238946325718394672183946721839'
export const IMPLEMENTATION_VERSION_NAME = 'RADMESH_0_1'

const UID_PATTERN = /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$/
const LAX_UID_PATTERN = /^[0-9]+(\.[0-9]+)*$/

/**
 * Why `value` is not a UID, or undefined when it is one. Components with leading zeros are common in
 * real files and harmless, so they pass; anything that could act as a path or query character does not.
 */
export function uidProblem(value: string): string | undefined {
  if (value.length === 0) return 'is empty'
  if (value.length > 64) return `is ${value.length} characters long (at most 64)`
  if (!LAX_UID_PATTERN.test(value)) return 'has characters other than digits and dots'
  return undefined
}

export const isStrictUid = (value: string): boolean => value.length <= 64 && UID_PATTERN.test(value)

/**
 * DICOM value padding (PS3.5 6.2: a text value is padded to an even length with a trailing space, a UID with
 * a trailing NUL) removed with a loop. The obvious `text.replace(/[\0 ]+$/, '')` backtracks over every run of
 * spaces that does not end the value, in time quadratic in its length: 200,000 spaces before an `x` took 89 s,
 * and values come from whoever sent the object or the association.
 */

const isPadding = (code: number): boolean => code === 0x20 || code === 0

/** `text` without its trailing spaces and NULs. */
export function withoutTrailingPadding(text: string): string {
  let end = text.length
  while (end > 0 && isPadding(text.charCodeAt(end - 1))) end--
  return end === text.length ? text : text.slice(0, end)
}

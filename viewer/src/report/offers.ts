/**
 * Sentences a report section offers in one click (the COMPARISON section offers one per prior): where a
 * sentence goes into the section's text. Pure: the panel applies the insertion to the section's Y.Text.
 */

export interface Offer {
  /** what the offer is about (a prior's StudyInstanceUID), for the page and its tests */
  key: string
  /** the sentence inserted */
  text: string
}

/**
 * Where `sentence` goes in a section holding `existing`: at the end, on a line of its own; undefined when the
 * section already says it (a second click, or a co-author's click, adds nothing).
 */
export function sentenceInsertion(existing: string, sentence: string): { index: number; insert: string } | undefined {
  const wanted = sentence.trim()
  if (wanted === '' || existing.split('\n').some(line => line.trim() === wanted)) return undefined
  const separator = existing.endsWith('\n') || existing.trim() === '' ? '' : '\n'
  return { index: existing.length, insert: `${separator}${wanted}` }
}

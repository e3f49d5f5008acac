/**
 * Sentences a report section offers in one click (the COMPARISON section offers one per prior): where a
 * sentence goes into the section's text (pure, tested in Node), and the buttons that offer them.
 */
import type * as Y from 'yjs'
import { clear, h } from '../dom.ts'

export interface Offer {
  /** what the offer is about (a prior's StudyInstanceUID), for the page and its tests */
  key: string
  /** the sentence inserted */
  text: string
}

/**
 * Where `sentence` goes in a section holding `existing`: at the end, on a line of its own; undefined when the
 * section already says it: a line that begins with it, its final full stop aside (a second click, a co-author's
 * click, or a reader who took it and went on: "Compared with CT HEAD of 2024-03-01: no change." adds nothing).
 */
export function sentenceInsertion(existing: string, sentence: string): { index: number; insert: string } | undefined {
  const wanted = sentence.trim()
  const stem = wanted.replace(/\.$/, '')
  if (wanted === '' || existing.split('\n').some(line => line.trim().startsWith(stem))) return undefined
  const separator = existing.endsWith('\n') || existing.trim() === '' ? '' : '\n'
  return { index: existing.length, insert: `${separator}${wanted}` }
}

/**
 * The offers of one section, as buttons under it: a click inserts the sentence into the section's Y.Text (the
 * report's own CRDT, so it reaches the node and every co-author like typed text); a sentence the section
 * already holds, from this click or anyone's, shows as added.
 */
export class SectionOffers {
  readonly element: HTMLDivElement
  private readonly section: Y.Text
  private readonly origin: unknown
  private offers: Offer[] = []
  private writable = false

  /** `origin`: the Yjs transaction origin of an insertion (not the textarea's own, so the textarea shows it). */
  constructor(section: Y.Text, origin: unknown, id: string) {
    this.section = section
    this.origin = origin
    this.element = h('div', { class: 'offers', id })
    section.observe(() => {
      this.render()
    })
  }

  set(offers: Offer[]): void {
    this.offers = offers
    this.render()
  }

  setWritable(writable: boolean): void {
    this.writable = writable
    this.render()
  }

  private render(): void {
    const existing = this.section.toString()
    clear(
      this.element,
      ...this.offers.map(offer => {
        const added = sentenceInsertion(existing, offer.text) === undefined
        return h(
          'button',
          {
            class: added ? 'offer added' : 'offer',
            'data-key': offer.key,
            disabled: added || !this.writable,
            title: added ? 'In the report' : 'Add to the report',
            onclick: () => {
              this.insert(offer)
            }
          },
          `${added ? '✓' : '+'} ${offer.text}`
        )
      })
    )
  }

  private insert(offer: Offer): void {
    if (!this.writable) return
    const at = sentenceInsertion(this.section.toString(), offer.text)
    if (at === undefined) return
    ;(this.section.doc as Y.Doc).transact(() => {
      this.section.insert(at.index, at.insert)
    }, this.origin)
  }
}

/**
 * A textarea bound to a Y.Text: typing becomes the smallest delete-and-insert on the Y.Text (so two
 * readers typing in one section both keep their words), and changes from elsewhere update the textarea
 * while the caret and selection stay on the same text.
 */
import type * as Y from 'yjs'

/** Where `prev` and `next` differ: the one edit that turns one into the other. */
export function diff(prev: string, next: string): { index: number; remove: number; insert: string } {
  let start = 0
  while (start < prev.length && start < next.length && prev[start] === next[start]) start++
  let endPrev = prev.length
  let endNext = next.length
  while (endPrev > start && endNext > start && prev[endPrev - 1] === next[endNext - 1]) {
    endPrev--
    endNext--
  }
  return { index: start, remove: endPrev - start, insert: next.slice(start, endNext) }
}

/**
 * A caret position after a change described by a Yjs delta (an insert at the caret pushes it along only if
 * before it).
 */
export function mapPosition(
  position: number,
  delta: Array<{ insert?: unknown; retain?: number; delete?: number }>
): number {
  let at = 0
  let mapped = position
  for (const op of delta) {
    if (op.retain !== undefined) {
      at += op.retain
    } else if (typeof op.insert === 'string') {
      if (at < position) mapped += op.insert.length
      at += op.insert.length
    } else if (op.delete !== undefined) {
      if (at < position) mapped -= Math.min(op.delete, position - at)
    }
    if (at >= position) break
  }
  return mapped
}

export function bindTextarea(textarea: HTMLTextAreaElement, text: Y.Text, origin: unknown): () => void {
  let value = text.toString()
  textarea.value = value
  const onInput = (): void => {
    const next = textarea.value
    const { index, remove, insert } = diff(value, next)
    value = next
    if (remove === 0 && insert === '') return
    ;(text.doc as Y.Doc).transact(() => {
      if (remove > 0) text.delete(index, remove)
      if (insert !== '') text.insert(index, insert)
    }, origin)
  }
  const onChange = (event: Y.YTextEvent, transaction: Y.Transaction): void => {
    if (transaction.origin === origin) return
    const focused = document.activeElement === textarea
    const delta = event.delta as Array<{ insert?: unknown; retain?: number; delete?: number }>
    const start = mapPosition(textarea.selectionStart, delta)
    const end = mapPosition(textarea.selectionEnd, delta)
    value = text.toString()
    textarea.value = value
    if (focused) textarea.setSelectionRange(start, end)
  }
  textarea.addEventListener('input', onInput)
  text.observe(onChange)
  return () => {
    textarea.removeEventListener('input', onInput)
    text.unobserve(onChange)
  }
}

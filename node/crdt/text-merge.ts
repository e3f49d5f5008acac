/**
 * Three-way merge of one edit into a text that others may have changed since: `PUT …/report` with a `base`
 * (the text the writer started from) keeps what a co-author wrote meanwhile, where a plain replace would
 * silently drop it. Each side's change is the one stretch between the common prefix and the common suffix
 * of the base and its text; two changes that do not meet merge, two that overlap or touch are a conflict
 * (the caller answers 409 and nothing is written).
 */

/** The stretch of `from` that `to` replaces: [start, end) in `from`, and what goes there. */
export interface Change {
  start: number
  end: number
  insert: string
}

/** The smallest single change from `from` to `to`: their common prefix and suffix are kept. */
export function changeBetween(from: string, to: string): Change {
  let start = 0
  while (start < from.length && start < to.length && from[start] === to[start]) start++
  let suffix = 0
  while (
    suffix < from.length - start &&
    suffix < to.length - start &&
    from[from.length - 1 - suffix] === to[to.length - 1 - suffix]
  )
    suffix++
  return { start, end: from.length - suffix, insert: to.slice(start, to.length - suffix) }
}

/**
 * `current` with the change from `base` to `next` applied, or undefined when that change meets one made
 * from `base` to `current` (overlapping or touching stretches: which should come first is not known).
 */
export function mergeEdit(base: string, next: string, current: string): string | undefined {
  if (current === base || current === next) return next
  if (next === base) return current
  const ours = changeBetween(base, next)
  const theirs = changeBetween(base, current)
  if (ours.end < theirs.start) return current.slice(0, ours.start) + ours.insert + current.slice(ours.end)
  if (ours.start > theirs.end) {
    const shift = theirs.insert.length - (theirs.end - theirs.start)
    return current.slice(0, ours.start + shift) + ours.insert + current.slice(ours.end + shift)
  }
  return undefined
}

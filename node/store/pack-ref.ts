/**
 * A position in the archive's pack log, `pack:offset` (where a commit entry starts). The archive writes
 * them, the audit log keeps the latest one it holds; refs order as the commits were written.
 */
export const parseRef = (ref: string): { pack: number; offset: number } => {
  const [pack, offset] = ref.split(':').map(Number)
  return { pack: pack ?? 0, offset: offset ?? 0 }
}

export const compareRefs = (a: string, b: string): number => {
  const x = parseRef(a)
  const y = parseRef(b)
  return x.pack - y.pack || x.offset - y.offset
}

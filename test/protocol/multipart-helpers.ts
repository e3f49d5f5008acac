/**
 * What the multipart/related tests (multipart*.test.ts) share: text to bytes and back, joined chunks, and
 * seeded pseudo-random bytes.
 */
export const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text)
export const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes)

export function concat(chunks: Iterable<Uint8Array>): Uint8Array {
  const list = [...chunks]
  const out = new Uint8Array(list.reduce((n, c) => n + c.length, 0))
  let at = 0
  for (const chunk of list) {
    out.set(chunk, at)
    at += chunk.length
  }
  return out
}

export function randomBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n)
  let x = seed
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0
    out[i] = x >>> 24
  }
  return out
}

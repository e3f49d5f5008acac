/** The viewer's decoders, loaded in Node for tests (the same packages the browser bundle uses). */
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'
import type { CodecName, Codecs } from '../../viewer/src/image/decode.ts'

const require = createRequire(import.meta.url)
const entries: Record<CodecName, string> = {
  'libjpeg-turbo': '@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs',
  charls: '@cornerstonejs/codec-charls/decodewasmjs',
  openjpeg: '@cornerstonejs/codec-openjpeg/decodewasmjs'
}
const loaded = new Map<CodecName, Promise<unknown>>()
export const JPEG12_PATH = require.resolve('@cornerstonejs/dicom-image-loader').replace(/index\.js$/, 'codecs/jpeg.js')

export const nodeCodecs: Codecs = {
  wasm: async name => {
    let module = loaded.get(name)
    if (module === undefined) {
      module = (require(entries[name]) as (options: object) => Promise<unknown>)({
        print: () => {},
        printErr: () => {}
      })
      loaded.set(name, module)
    }
    return (await module) as Awaited<ReturnType<Codecs['wasm']>>
  },
  jpeg12: async () =>
    ((await import(pathToFileURL(JPEG12_PATH).href)) as { default: Awaited<ReturnType<Codecs['jpeg12']>> }).default,
  jpegLossless: async () =>
    (require('@cornerstonejs/jpeg-lossless-decoder-js') as { Decoder: Awaited<ReturnType<Codecs['jpegLossless']>> })
      .Decoder
}

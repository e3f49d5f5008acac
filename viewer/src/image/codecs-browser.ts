/**
 * The decoders for the browser bundle: the WebAssembly modules are instantiated on first use, their .wasm
 * files fetched from the node at /viewer/codecs/ (node/http/viewer.ts serves them from node_modules).
 */
import charls from '@cornerstonejs/codec-charls/decodewasmjs'
import libjpegTurbo from '@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs'
import openjpeg from '@cornerstonejs/codec-openjpeg/decodewasmjs'
import type { CodecName, Codecs } from './decode.ts'

type Factory = (options: object) => Promise<unknown>
const factories: Record<CodecName, Factory> = {
  'libjpeg-turbo': libjpegTurbo as Factory,
  charls: charls as Factory,
  openjpeg: openjpeg as Factory
}
const loaded = new Map<CodecName, Promise<unknown>>()

export const browserCodecs: Codecs = {
  wasm: async name => {
    let module = loaded.get(name)
    if (module === undefined) {
      module = factories[name]({
        locateFile: (file: string) => `/viewer/codecs/${file}`,
        print: () => {},
        printErr: () => {}
      })
      loaded.set(name, module)
    }
    return (await module) as Awaited<ReturnType<Codecs['wasm']>>
  },
  jpeg12: async () => (await import('cornerstone-jpeg12')).default as Awaited<ReturnType<Codecs['jpeg12']>>,
  jpegLossless: async () =>
    (await import('@cornerstonejs/jpeg-lossless-decoder-js')).Decoder as unknown as Awaited<
      ReturnType<Codecs['jpegLossless']>
    >
}

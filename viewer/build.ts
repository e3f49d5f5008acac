/**
 * Bundles the viewer (viewer/src/main.ts) for the browser with esbuild, in memory: the node builds it once,
 * when its HTTP server starts, and serves it at /viewer/app.js (node/http/viewer.ts). No build step to
 * forget, and the bundle always matches the node's code.
 */
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { build } from 'esbuild'

const require = createRequire(import.meta.url)

/** The WebAssembly decoders the bundle fetches from /viewer/codecs/NAME, by file name. */
export const CODEC_FILES: Record<string, string> = {
  'libjpegturbowasm_decode.wasm': require.resolve('@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasm'),
  'charlswasm_decode.wasm': require.resolve('@cornerstonejs/codec-charls/decodewasm'),
  'openjpegwasm_decode.wasm': require.resolve('@cornerstonejs/codec-openjpeg/decodewasm')
}

export async function buildViewer(): Promise<string> {
  const result = await build({
    entryPoints: [join(import.meta.dirname, 'src', 'main.ts')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    sourcemap: false,
    write: false,
    logLevel: 'silent',
    alias: {
      'cornerstone-jpeg12': require.resolve('@cornerstonejs/dicom-image-loader').replace(/index\.js$/, 'codecs/jpeg.js')
    },
    // The Emscripten decoders have Node branches that never run in a browser.
    external: ['fs', 'path', 'crypto', 'module', 'url', 'worker_threads', 'ws', 'perf_hooks'],
    define: { 'process.env.NODE_ENV': '"production"' }
  })
  const output = result.outputFiles[0]
  if (output === undefined) throw new Error('esbuild produced no viewer bundle')
  return output.text
}

// Packages without type declarations for the entry points the viewer uses.
declare module '@cornerstonejs/codec-charls/decodewasmjs' {
  const factory: (options?: object) => Promise<unknown>
  export default factory
}
declare module '@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs' {
  const factory: (options?: object) => Promise<unknown>
  export default factory
}
declare module '@cornerstonejs/codec-openjpeg/decodewasmjs' {
  const factory: (options?: object) => Promise<unknown>
  export default factory
}
/**
 * @cornerstonejs/dicom-image-loader's JPEG decoder (dist/esm/codecs/jpeg.js), aliased by the bundler
 * (viewer/build.ts)
 */
declare module 'cornerstone-jpeg12' {
  const JpegImage: unknown
  export default JpegImage
}

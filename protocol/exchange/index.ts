/**
 * @packageDocumentation
 * Study exchange wire formats: study manifests and key wraps (what a site publishes so that its readers
 * fetch a study from anyone who holds it, and only they can read it), the manifest, chunks (1.0.0, and 2.0.0
 * with chunks compressed on the wire) and announce protocols with their codecs, and every limit their
 * streams keep, each with its reason. Bytes only: the node verifies, stores and serves.
 */
export * from './chunks.ts'
export * from './manifest.ts'
export * from './messages.ts'

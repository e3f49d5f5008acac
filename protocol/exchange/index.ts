/**
 * @packageDocumentation
 * Study exchange wire formats: study manifests and key wraps (what a site publishes so that its readers
 * fetch a study from anyone who holds it, and only they can read it), the manifest, chunks and announce
 * protocols with their codecs, and every limit their streams keep, each with its reason. Bytes only: the
 * node verifies, stores and serves.
 */
export * from './manifest.ts'
export * from './messages.ts'

/**
 * `npm run bench -- NAME [options]`: benchmarks that run radmesh beside its competitors in one run and
 * print ratios. They are measurements, not tests: nothing here passes or fails on a number.
 *
 *   ingest    a synthetic 400-slice CT by storescu into radmesh, Orthanc and DCMTK storescp
 *   transfer  the same CT from one process to another: radmesh site -> reader, storescu -> storescp, Orthanc peers
 *   transfer-profile  one radmesh fetch of that CT with both nodes profiled: where each main thread's time goes
 *   viewer    click to first image while the study arrives, and scrolling, in headless Chromium
 *   tat       a STAT head CT at scanner pace: streamed to the reader behind a thin link vs store-and-forward
 *   scale     a year of cases, a hundred members, convergence with many nodes (issue 14)
 *   relay     a study direct and through a member relay; readers behind NAT holding reservations on one relay
 *   hole-punch  a study direct, relayed and over a hole-punched WebRTC link, between real NATs (root)
 *   start     a site's node up and down again, against Orthanc; the CLI's most run commands
 */
const benches: Record<string, string> = {
  ingest: './bench/ingest.ts',
  transfer: './bench/transfer.ts',
  'transfer-profile': './bench/transfer-profile.ts',
  viewer: './bench/viewer.ts',
  tat: './bench/tat.ts',
  scale: './bench/scale.ts',
  relay: './bench/relay.ts',
  'hole-punch': './bench/hole-punch.ts',
  start: './bench/start.ts'
}
const [name, ...rest] = process.argv.slice(2)
const module = name === undefined ? undefined : benches[name]
if (module === undefined) {
  process.stderr.write(`usage: npm run bench -- ${Object.keys(benches).join('|')} [options]\n`)
  process.exit(2)
}
process.argv = [process.argv[0] as string, module, ...rest]
await import(module)

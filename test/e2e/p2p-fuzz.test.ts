/**
 * A bounded pass of the p2p fuzzer (scripts/fuzz/p2p.ts): mutated messages of every `/radmesh/*` protocol
 * from members with real certificates, against a real site. None may crash the site, hang it or lose
 * anything of its study, case or FINAL report; its memory stays bounded. A failure prints the seed, and
 * RADMESH_FUZZ_SEED=S replays the run.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { runP2pFuzz } from '../../scripts/fuzz/p2p.ts'

const CASES = 150

test(`${CASES} mutated p2p messages: nothing crashes, hangs or is lost; the site stays under 1 GB`, async () => {
  const seed = Number(process.env['RADMESH_FUZZ_SEED'] ?? Math.floor(Math.random() * 2 ** 31))
  const lines: string[] = []
  const tally = await runP2pFuzz({
    cases: CASES,
    seed,
    say: line => {
      lines.push(line)
    }
  })
  process.stdout.write(`\n    [p2p fuzz] ${lines[lines.length - 1] ?? ''}\n`)
  const findings = tally.findings.map(f => `  case ${f.case}: ${f.outcome}: ${f.what.slice(0, 400)}`).join('\n')
  const failed = `seed ${seed} (replay with RADMESH_FUZZ_SEED=${seed}):\n${findings}`
  assert.is(tally.tried, CASES)
  assert.equal([tally.crashed, tally.hung, tally.lost], [0, 0, 0], failed)
  assert.ok(tally.refused > CASES / 4, `only ${tally.refused} of ${CASES} refused: ${failed}`)
  assert.ok(tally.peakRssMb < 1024, `the site peaked at ${Math.round(tally.peakRssMb)} MB`)
})

test.run()

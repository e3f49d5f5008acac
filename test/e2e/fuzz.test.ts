/**
 * A bounded pass of the fuzzer (`npm run fuzz`) on every `npm test`: the dicom, stow and qido kinds, each
 * against its own node. Any crash, hang or loss, or a case that takes the node's RSS over 1 GB, fails the test
 * with its seed and case, so it replays with `npm run fuzz -- KIND --seed S --from CASE --cases 1`.
 * RADMESH_FUZZ_SEED fixes the seed (random otherwise).
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { KindOptions, KindTally } from '../../scripts/fuzz/common.ts'
import { summary } from '../../scripts/fuzz/common.ts'
import { runDicomFuzz } from '../../scripts/fuzz/dicom.ts'
import { runQidoFuzz } from '../../scripts/fuzz/qido.ts'
import { runStowFuzz } from '../../scripts/fuzz/stow.ts'

const seed = Number(process.env['RADMESH_FUZZ_SEED'] ?? Math.floor(Math.random() * 2 ** 31))

async function pass(run: (options: KindOptions) => Promise<KindTally>, cases: number): Promise<void> {
  const lines: string[] = []
  const tally = await run({
    cases,
    seed,
    say: line => {
      lines.push(line)
    }
  })
  const findings = tally.findings.map(
    f =>
      `${f.kind} ${f.outcome} seed=${f.seed} case=${f.case}: ${f.what}\n` +
      `  replay: npm run fuzz -- ${f.kind} --seed ${f.seed} --from ${f.case} --cases 1`
  )
  assert.is(tally.tried, cases)
  const memory = tally.overMemory.map(line => `${tally.kind} seed=${seed} ${line}`)
  assert.ok(
    findings.length === 0 && memory.length === 0,
    `seed ${seed}, ${tally.kind}: ${summary(tally)}\n${[...findings, ...memory].join('\n')}`
  )
  assert.is(tally.crashed + tally.hung + tally.lost, 0)
}

test(`dicom: mutated C-STOREs never crash, hang, lose an instance or take 1 GB (seed ${seed})`, async () => {
  await pass(runDicomFuzz, 150)
})

test(`stow: mutated STOW-RS requests never crash, hang, lose an instance or take 1 GB (seed ${seed})`, async () => {
  await pass(runStowFuzz, 120)
})

test(`qido: mutated QIDO-RS queries never crash, hang, lose an instance or take 1 GB (seed ${seed})`, async () => {
  await pass(runQidoFuzz, 200)
})

test.run()

/**
 * Scale benchmark (issue 14): what a year of cases, a hundred members and a large random soak cost a node.
 *
 *   npm run bench -- scale [--part history|members|convergence] [--cases 1000,10000,100000]
 *     [--members 10,30,100] [--processes 20] [--idle-seconds 20] [--changes 40]
 *     [--convergence-nodes 30] [--convergence-steps 40] [--no-cache]
 *
 * history      a site with N closed + 1,000 open cases (scale-history.ts): start, RSS, /api/worklist, a new
 *              reader's cold sync; HOMEs cached under $RADMESH_SCALE_CACHE (/tmp/radmesh-scale-cache)
 * members      idle traffic and change propagation with 10 to 100 members, many nodes in one process, beside
 *              one run of --processes nodes in separate processes (scale-members*.ts)
 * convergence  test/e2e/convergence.test.ts with --convergence-nodes nodes in separate processes
 *
 * Figures on a shared 2-core machine are noisy: compare only within one run.
 */
import { cpus, totalmem } from 'node:os'
import { parseArgs } from 'node:util'
import { say, sizes } from './scale-common.ts'
import { convergencePart } from './scale-convergence.ts'
import { historyPart } from './scale-history.ts'
import { membersPart } from './scale-members.ts'

const { values } = parseArgs({
  options: {
    part: { type: 'string', multiple: true },
    cases: { type: 'string', default: '1000,10000,100000' },
    members: { type: 'string', default: '10,30,100' },
    processes: { type: 'string', default: '20' },
    'idle-seconds': { type: 'string', default: '20' },
    changes: { type: 'string', default: '40' },
    'convergence-nodes': { type: 'string', default: '30' },
    'convergence-steps': { type: 'string', default: '40' },
    'no-cache': { type: 'boolean', default: false }
  }
})
const PARTS = ['history', 'members', 'convergence']
const parts = new Set((values.part ?? PARTS).flatMap(p => p.split(',')))
for (const part of parts) {
  if (!PARTS.includes(part)) {
    process.stderr.write(`--part ${part}: one of history, members, convergence\n`)
    process.exit(2)
  }
}

say(`scale benchmark: ${[...parts].join(', ')}`)
const memory = `${(totalmem() / 2 ** 30).toFixed(0)} GiB`
const cpu = `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}`
say(`machine: ${cpu}, ${memory}, node ${process.version}, ${new Date().toISOString()}`)
say()
if (parts.has('history')) await historyPart(sizes(values.cases), !values['no-cache'])
if (parts.has('members')) {
  await membersPart({
    sizes: sizes(values.members),
    processes: Number(values.processes),
    idleSeconds: Number(values['idle-seconds']),
    changes: Number(values.changes)
  })
}
if (parts.has('convergence')) {
  await convergencePart(Number(values['convergence-nodes']), Number(values['convergence-steps']))
}
process.exit(0)

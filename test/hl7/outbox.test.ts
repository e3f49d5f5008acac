/**
 * The HL7 outbox and its sender against a RIS listener no one here wrote (Debian's python3-hl7): what is kept
 * survives a restart, a RIS that is down gets the message once it is up (backoff doubling, capped), AE is kept
 * as the answer and not sent again, a RIS that takes the message and never answers is tried again.
 */
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type Socket } from 'node:net'
import { join } from 'node:path'
import { pino } from 'pino'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { StorageKey } from '../../node/archive/sealing.ts'
import { backoff, Hl7Outbox, Hl7Sender, oruR01, outboxKey } from '../../node/reports/hl7/index.ts'
import type { AuditEntry } from '../../node/audit/log.ts'
import { type Database, openDatabase } from '../../node/store/database.ts'
import { freePort } from '../../scripts/lib/ports.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { waitFor } from '../../scripts/lib/wait.ts'
import { startHl7Receiver } from '../../scripts/lib/hl7-receiver.ts'

const log = pino({ level: 'silent' })

function message(caseId: string, accession: string, resultStatus: 'F' | 'C'): string {
  return oruR01(
    {
      caseId,
      status: 'FINAL',
      sections: { indication: '', technique: '', comparison: '', findings: 'Normal.', impression: 'Nothing acute.' },
      signers: [{ peerId: '12D3KooWReader', name: 'Dr Reader', status: 'FINAL', signedAt: '2026-12-06T15:00:00.000Z' }],
      addenda: [],
      finalAt: '2026-12-06T15:00:00.000Z',
      institutionName: 'County Hospital'
    },
    {
      studyInstanceUid: '1.2.3',
      instances: [],
      attributes: { '00080050': accession, '00100020': `P-${accession}`, '00100010': 'DOE^JANE' }
    },
    { controlId: `CTRL${caseId}`, sentAt: '2026-12-06T15:00:01.000Z', sendingFacility: 'County', resultStatus }
  )
}

function entry(caseId: string, accession: string, addenda = 0) {
  const resultStatus = addenda === 0 ? ('F' as const) : ('C' as const)
  return {
    key: outboxKey(caseId, addenda),
    caseId,
    studyUid: '1.2.3',
    controlId: `CTRL${caseId}`,
    resultStatus,
    message: message(caseId, accession, resultStatus)
  }
}

async function withDb(run: (db: Database, key: StorageKey) => Promise<void>): Promise<void> {
  const db = await openDatabase(join(await tempDir(), 'db'))
  try {
    await run(db, new StorageKey(randomBytes(32)))
  } finally {
    await db.close()
  }
}

test('the delay between attempts doubles from the first and stops at the cap', () => {
  assert.equal(
    [1, 2, 3, 4, 10, 40].map(n => backoff(n, 5_000, 300_000)),
    [5_000, 10_000, 20_000, 40_000, 300_000, 300_000]
  )
})

test('a message for a RIS that is down stays pending across a restart, and is delivered once it is up', async () => {
  await withDb(async (db, key) => {
    const port = await freePort()
    const audit: AuditEntry[] = []
    const options = {
      ris: { host: '127.0.0.1', port },
      audit: {
        append: async (e: AuditEntry) => {
          audit.push(e)
        }
      },
      peerId: '12D3KooWSite',
      log,
      retryMs: 200,
      maxRetryMs: 400
    }
    const first = new Hl7Sender({ ...options, outbox: new Hl7Outbox(db, key) })
    await first.start()
    await first.enqueue(entry('case1', 'ACC-1'))
    await first.enqueue(entry('case1', 'ACC-1'))
    const outbox = new Hl7Outbox(db, key)
    await waitFor('two failed attempts', async () => ((await outbox.get(outboxKey('case1', 0)))?.attempts ?? 0) >= 2)
    await first.stop()
    const kept = await outbox.get(outboxKey('case1', 0))
    assert.is(kept?.state, 'pending')
    assert.match(kept?.lastError ?? '', /ECONNREFUSED/)
    assert.ok(Date.parse(kept?.nextAttemptAt ?? '') > Date.parse(kept?.lastAttemptAt ?? ''))
    assert.is((await outbox.pending()).length, 1, 'the same report version is kept once')

    const receiver = await startHl7Receiver(port)
    try {
      const second = new Hl7Sender({ ...options, outbox: new Hl7Outbox(db, key) })
      await second.start()
      await second.enqueue(entry('case1', 'ACC-1', 1))
      await waitFor('both messages at the RIS', () => receiver.received.length === 2, 10_000)
      await second.stop()
      assert.equal(
        receiver.received.map(m => [m.controlId, m.resultStatus, m.accession, m.problems]),
        [
          ['CTRLcase1', 'F', 'ACC-1', []],
          ['CTRLcase1', 'C', 'ACC-1', []]
        ],
        'in order, F before C'
      )
      const states = await outbox.ofCase('case1')
      assert.equal(
        states.map(s => [s.state, s.ack?.code]),
        [
          ['delivered', 'AA'],
          ['delivered', 'AA']
        ]
      )
      assert.equal(await outbox.pending(), [])
      assert.equal(
        audit.map(a => [a.event, a.outcome, a.study]),
        [
          ['export', 0, '1.2.3'],
          ['export', 0, '1.2.3']
        ]
      )
    } finally {
      await receiver.stop()
    }
  })
})

test('an AE is kept as the answer with its reason, not sent again, and the next message still goes', async () => {
  await withDb(async (db, key) => {
    const receiver = await startHl7Receiver(await freePort(), { reject: ['P-ACC-BAD'] })
    try {
      const audit: AuditEntry[] = []
      const outbox = new Hl7Outbox(db, key)
      const sender = new Hl7Sender({
        outbox,
        ris: { host: '127.0.0.1', port: receiver.port },
        log,
        peerId: 'site',
        audit: {
          append: async (e: AuditEntry) => {
            audit.push(e)
          }
        },
        retryMs: 200
      })
      await sender.start()
      await sender.enqueue(entry('bad', 'ACC-BAD'))
      await sender.enqueue(entry('good', 'ACC-OK'))
      await waitFor('both answered', async () => (await outbox.get(outboxKey('good', 0)))?.state === 'delivered')
      await sender.stop()
      const bad = await outbox.get(outboxKey('bad', 0))
      assert.equal(
        [bad?.state, bad?.ack?.code, bad?.ack?.text, bad?.attempts],
        ['rejected', 'AE', 'no such order here', 1]
      )
      assert.is(receiver.received.length, 2)
      assert.equal(
        audit.map(a => a.outcome),
        [8, 0]
      )
    } finally {
      await receiver.stop()
    }
  })
})

test('a RIS that never acknowledges: the attempt ends at the ACK deadline and the message stays pending', async () => {
  await withDb(async (db, key) => {
    // Takes every byte and answers nothing.
    const sockets: Socket[] = []
    const silent = createServer(socket => {
      sockets.push(socket)
      socket.resume()
    })
    silent.listen(0, '127.0.0.1')
    await once(silent, 'listening')
    const outbox = new Hl7Outbox(db, key)
    const sender = new Hl7Sender({
      outbox,
      ris: { host: '127.0.0.1', port: (silent.address() as { port: number }).port },
      log,
      peerId: 'site',
      audit: { append: async () => {} },
      ackTimeoutMs: 300,
      retryMs: 60_000
    })
    try {
      const started = Date.now()
      await sender.start()
      await sender.enqueue(entry('quiet', 'ACC-Q'))
      // The sender keeps an attempt's error in the outbox once the attempt has ended.
      await waitFor(
        'the attempt to end with its error kept',
        async () => (await outbox.get(outboxKey('quiet', 0)))?.lastError
      )
      const kept = await outbox.get(outboxKey('quiet', 0))
      assert.is(kept?.state, 'pending')
      assert.match(kept?.lastError ?? '', /no ACK within 300 ms/)
      assert.ok(Date.now() - started < 5_000, `the attempt ended ${Date.now() - started} ms after it began`)
    } finally {
      await sender.stop()
      for (const socket of sockets) socket.destroy()
      silent.close()
    }
  })
})

test.run()

/**
 * Negotiating an association, without a network: each presentation context is accepted with the first
 * transfer syntax the SCU proposes that radmesh stores, or rejected with the reason; an A-ASSOCIATE-RQ for
 * another AE title, from a caller not allowed, in another application context or past the association limit
 * is rejected with the source and reason PS3.8 gives, transient only for the limit.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { TRANSFER_SYNTAX } from '../../node/dicom/dictionary.ts'
import {
  type AssociateRq,
  CONTEXT_RESULT,
  REJECT_REASON,
  REJECT_RESULT,
  REJECT_SOURCE
} from '../../node/dicom/dimse/pdu.ts'
import { type Negotiation, type Negotiator, negotiate, type Rejection } from '../../node/dicom/scp/negotiation.ts'

const CT = '1.2.840.10008.5.1.4.1.1.2'
const MPEG2 = '1.2.840.10008.1.2.4.100'

const rq = (overrides: Partial<AssociateRq> = {}): AssociateRq => ({
  protocolVersion: 1,
  calledAeTitle: 'RADMESH',
  callingAeTitle: 'CT1',
  applicationContext: '1.2.840.10008.3.1.1.1',
  presentationContexts: [
    { id: 1, abstractSyntax: '1.2.840.10008.1.1', transferSyntaxes: [TRANSFER_SYNTAX.implicitLittle] },
    {
      id: 3,
      abstractSyntax: CT,
      transferSyntaxes: [MPEG2, TRANSFER_SYNTAX.jpegLosslessSV1, TRANSFER_SYNTAX.explicitLittle]
    },
    { id: 5, abstractSyntax: CT, transferSyntaxes: [MPEG2] },
    { id: 7, abstractSyntax: '1.2.840.10008.5.1.4.31', transferSyntaxes: [TRANSFER_SYNTAX.explicitLittle] },
    { id: 9, abstractSyntax: '1.2.826.0.1.3680043.2.1', transferSyntaxes: [TRANSFER_SYNTAX.rle] }
  ],
  maxPduLength: 16_384,
  implementationClassUid: '1.2.3',
  ...overrides
})

const scp = (overrides: Partial<Negotiator> = {}): Negotiator => ({
  aeTitle: 'RADMESH',
  allows: () => true,
  address: '10.0.0.5',
  associations: 0,
  maxAssociations: 16,
  maxPduLength: 1_048_576,
  ...overrides
})

function rejection(negotiation: Negotiation): Rejection {
  assert.ok('rejected' in negotiation, 'rejected')
  return negotiation.rejected
}

test('each context is accepted with the first transfer syntax proposed that radmesh stores, or rejected', () => {
  const negotiation = negotiate(rq(), scp())
  assert.ok('accepted' in negotiation)
  assert.equal(
    negotiation.accepted.presentationContexts.map(c => [c.id, c.result, c.transferSyntax]),
    [
      [1, CONTEXT_RESULT.acceptance, TRANSFER_SYNTAX.implicitLittle],
      [3, CONTEXT_RESULT.acceptance, TRANSFER_SYNTAX.jpegLosslessSV1],
      [5, CONTEXT_RESULT.transferSyntaxesNotSupported, MPEG2],
      [7, CONTEXT_RESULT.abstractSyntaxNotSupported, TRANSFER_SYNTAX.explicitLittle],
      [9, CONTEXT_RESULT.acceptance, TRANSFER_SYNTAX.rle]
    ]
  )
  assert.equal(
    negotiation.contexts.map(c => c.id),
    [1, 3, 9]
  )
  assert.is(negotiation.accepted.maxPduLength, 1_048_576)
  assert.is(negotiation.accepted.callingAeTitle, 'CT1')
})

const STUDY_FIND = '1.2.840.10008.5.1.4.1.2.2.1'
const PATIENT_GET = '1.2.840.10008.5.1.4.1.2.1.3'

test('Query/Retrieve contexts: accepted in little endian only when the node answers them, refused otherwise', () => {
  const contexts = [
    {
      id: 1,
      abstractSyntax: STUDY_FIND,
      transferSyntaxes: [TRANSFER_SYNTAX.explicitBig, TRANSFER_SYNTAX.implicitLittle]
    },
    { id: 3, abstractSyntax: PATIENT_GET, transferSyntaxes: [TRANSFER_SYNTAX.deflatedExplicitLittle] }
  ]
  const answered = negotiate(rq({ presentationContexts: contexts }), scp({ queryRetrieve: true }))
  assert.ok('accepted' in answered)
  assert.equal(
    answered.accepted.presentationContexts.map(c => [c.id, c.result, c.transferSyntax]),
    [
      [1, CONTEXT_RESULT.acceptance, TRANSFER_SYNTAX.implicitLittle],
      [3, CONTEXT_RESULT.transferSyntaxesNotSupported, TRANSFER_SYNTAX.deflatedExplicitLittle]
    ]
  )
  const without = negotiate(rq({ presentationContexts: contexts }), scp())
  assert.ok('accepted' in without)
  assert.equal(
    without.accepted.presentationContexts.map(c => c.result),
    [CONTEXT_RESULT.abstractSyntaxNotSupported, CONTEXT_RESULT.abstractSyntaxNotSupported]
  )
})

test('a C-GET SCU asking the SCP role for a storage class gets it; the context is marked for C-STOREs', () => {
  const roles = [
    { sopClassUid: CT, scu: false, scp: true },
    { sopClassUid: STUDY_FIND, scu: true, scp: true },
    { sopClassUid: '1.2.840.10008.5.1.4.1.1.4', scu: true, scp: false }
  ]
  const negotiation = negotiate(rq({ roles }), scp({ queryRetrieve: true }))
  assert.ok('accepted' in negotiation)
  assert.equal(negotiation.accepted.roles, [{ sopClassUid: CT, scu: false, scp: true }])
  assert.equal(
    negotiation.contexts.map(c => [c.id, c.scpRole === true]),
    [
      [1, false],
      [3, true],
      [9, false]
    ]
  )
})

test('another called AE title, a caller not allowed, another application context: rejected permanently', () => {
  const called = rejection(negotiate(rq({ calledAeTitle: 'PACS' }), scp()))
  assert.equal(
    [called.source, called.reason, called.result],
    [REJECT_SOURCE.serviceUser, REJECT_REASON.calledAeNotRecognized, REJECT_RESULT.permanent]
  )
  const caller = rejection(negotiate(rq(), scp({ allows: ae => ae !== 'CT1' })))
  assert.equal([caller.reason, caller.kind], [REJECT_REASON.callingAeNotRecognized, 'calling-ae'])
  const context = rejection(negotiate(rq({ applicationContext: '1.2.3' }), scp()))
  assert.is(context.reason, REJECT_REASON.applicationContextNotSupported)
  const version = rejection(negotiate(rq({ protocolVersion: 2 }), scp()))
  assert.equal(
    [version.source, version.reason],
    [REJECT_SOURCE.serviceProviderAcse, REJECT_REASON.protocolVersionNotSupported]
  )
  assert.is(rejection(negotiate(rq({ maxPduLength: 6 }), scp())).reason, REJECT_REASON.noReason)
})

test('past the association limit: rejected as transient, so the SCU may try again', () => {
  const limit = rejection(negotiate(rq(), scp({ associations: 16 })))
  assert.equal(
    [limit.result, limit.source, limit.reason, limit.kind],
    [REJECT_RESULT.transient, REJECT_SOURCE.serviceProviderPresentation, REJECT_REASON.localLimitExceeded, 'limit']
  )
  assert.ok('accepted' in negotiate(rq(), scp({ associations: 15 })))
})

test.run()

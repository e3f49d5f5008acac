/**
 * A member's identity: an Ed25519 libp2p key (its peer id, which authenticates every connection) and an
 * X25519 key (study keys are wrapped to it). Both are made once by `radmesh init`, stored 0600, and
 * loaded unchanged by every start: the peer id of a node never changes.
 */
import { promises as fs } from 'node:fs'
import type { KeyObject } from 'node:crypto'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { asPeerIdString, type PeerIdString } from '../../protocol/ids.ts'
import { HomeError } from '../errors.ts'
import { SECRET_FILE_MODE, writeFileAtomic } from '../files.ts'
import { exportPrivateKeyDer, generateX25519, importPrivateKeyDer, rawPublicKey } from '../membership/crypto.ts'
import { createPublicKey } from 'node:crypto'
import type { HomePaths } from './home.ts'

export interface Identity {
  privateKey: PrivateKey
  peerId: PeerIdString
  wrapPrivateKey: KeyObject
  /** raw X25519 public key, base64url */
  wrapPublicKey: string
}

export async function createIdentity(paths: HomePaths): Promise<Identity> {
  const privateKey = await generateKeyPair('Ed25519')
  const wrap = generateX25519()
  await writeFileAtomic(paths.identityKey, privateKeyToProtobuf(privateKey), SECRET_FILE_MODE)
  await writeFileAtomic(paths.wrapKey, exportPrivateKeyDer(wrap.privateKey), SECRET_FILE_MODE)
  return {
    privateKey,
    peerId: asPeerIdString(peerIdFromPrivateKey(privateKey).toString()),
    wrapPrivateKey: wrap.privateKey,
    wrapPublicKey: wrap.publicKeyRaw
  }
}

async function readSecret(path: string, what: string): Promise<Buffer> {
  try {
    const stat = await fs.stat(path)
    if ((stat.mode & 0o077) !== 0) {
      throw new HomeError(
        'RADMESH_HOME_CORRUPT',
        `${what} at ${path} is readable by others (mode ${(stat.mode & 0o777).toString(8)}); run: chmod 600 ${path}`
      )
    }
    return await fs.readFile(path)
  } catch (error) {
    if (error instanceof HomeError) throw error
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new HomeError(
        'RADMESH_HOME_MISSING',
        `no ${what} at ${path}; run "radmesh init --home ${path.replace(/\/[^/]+$/, '')} …" first`
      )
    }
    throw new HomeError('RADMESH_HOME_CORRUPT', `cannot read ${what} at ${path}: ${(error as Error).message}`, {
      cause: error
    })
  }
}

export async function loadIdentity(paths: HomePaths): Promise<Identity> {
  const identityBytes = await readSecret(paths.identityKey, 'identity key')
  const wrapBytes = await readSecret(paths.wrapKey, 'wrap key')
  let privateKey: PrivateKey
  let wrapPrivateKey: KeyObject
  try {
    privateKey = privateKeyFromProtobuf(identityBytes)
    if (privateKey.type !== 'Ed25519') throw new Error(`a ${privateKey.type} key, radmesh uses Ed25519`)
  } catch (error) {
    throw new HomeError(
      'RADMESH_HOME_CORRUPT',
      `identity key at ${paths.identityKey} is damaged (${(error as Error).message}); restore HOME from a backup`,
      { cause: error }
    )
  }
  try {
    wrapPrivateKey = importPrivateKeyDer(wrapBytes)
    if (wrapPrivateKey.asymmetricKeyType !== 'x25519') throw new Error('not an X25519 key')
  } catch (error) {
    throw new HomeError(
      'RADMESH_HOME_CORRUPT',
      `wrap key at ${paths.wrapKey} is damaged (${(error as Error).message}); restore HOME from a backup`,
      { cause: error }
    )
  }
  return {
    privateKey,
    peerId: asPeerIdString(peerIdFromPrivateKey(privateKey).toString()),
    wrapPrivateKey,
    wrapPublicKey: rawPublicKey(createPublicKey(wrapPrivateKey))
  }
}

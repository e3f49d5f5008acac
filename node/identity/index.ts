/**
 * @packageDocumentation
 * A member's HOME: its layout, its keys (made once, 0600, never replaced), `init`, `join`, and loading
 * everything `start` needs with one clear error when something is missing or damaged.
 */
export { homePaths, type HomePaths } from './home.ts'
export { createIdentity, loadIdentity, type Identity } from './keys.ts'
export { initHome, joinHome, loadMember, type Member } from './member.ts'

/**
 * Who is in the encrypted call, decided by MLS (RFC 9420, through ts-mls) and
 * checked by every member — never by the server's word.
 *
 *   knock    = a KeyPackage (credential: display name, time, nonce), sealed with the lobby key
 *   approve  = an Add commit + Welcome made by the approver's page
 *   leave    = a Remove commit
 *   keys     = MLS exporter of the epoch → SFrame base key; the sender index is the leaf index
 *   safety   = the epoch authenticator: equal on every screen exactly when everyone has the same group
 *
 * A commit is applied only if its committer may make it (see CommitRules); otherwise it is
 * refused and nothing changes. Nothing here logs: errors never carry keys or names.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import {
  createApplicationMessage,
  createCommit,
  createGroup,
  decodeMlsMessage,
  defaultCapabilities,
  defaultLifetime,
  emptyPskIndex,
  encodeMlsMessage,
  generateKeyPackage,
  generateKeyPackageWithKey,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
  joinGroupWithExtensions,
  mlsExporter,
  nobleCryptoProvider,
  processPrivateMessage,
  type CiphersuiteImpl,
  type ClientState,
  type IncomingMessageCallback,
  type KeyPackage,
  type PrivateKeyPackage,
  type Proposal,
} from 'ts-mls';
import { verifyKeyPackage } from 'ts-mls/keyPackage.js';
import { unprotectPrivateMessage } from 'ts-mls/messageProtection.js';
import { type Bytes, type CallKey, toBase64url, uint64 } from './keys.js';

/**
 * X25519 + AES-128-GCM + Ed25519: RFC 9420's mandatory suite. The X-Wing (post-quantum
 * hybrid) suite was measured beside it (docs/SECURITY.md, "Cipher suite"): its Remove
 * commit in a 33-member call is ~43 KB and 2–3× slower, its Welcome ~48 KB.
 */
export const CIPHER_SUITE = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519' as const;
/** While the host's leaf is absent, members added at least this long ago may approve. */
export const APPROVER_DELAY_MS = 30_000;
/** A commit whose signed time is further than this from ours is refused (a clock lie to approve early). */
const COMMIT_CLOCK_SKEW_MS = 60_000;
/** A knock whose credential is older than this is shown as stale (a replay), never as a fresh name. */
export const KNOCK_FRESH_MS = 5 * 60_000;
/** GroupInfo extension (private-use range) in a Welcome: when each member was added, so a newcomer applies the 30 s rule like everyone. */
const ADDED_AT_EXTENSION = 0xf1a0;
const EXPORTER_LABEL = 'SFrame 1.0 Base Key';
const SAFETY_LABEL = 'linkcall safety code';

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

let suite: Promise<CiphersuiteImpl> | undefined;
export function cipherSuite(): Promise<CiphersuiteImpl> {
  // The noble provider hashes and derives synchronously: in a page, a join runs hundreds of HKDF
  // steps, and each WebCrypto call is a hop to another thread and back.
  suite ??= getCiphersuiteImpl(getCiphersuiteFromName(CIPHER_SUITE), nobleCryptoProvider);
  return suite;
}

/** base64url(SHA-256(signature public key)): what a link's `h=` pins. */
export function keyHash(signaturePublicKey: Uint8Array): string {
  return toBase64url(sha256(signaturePublicKey));
}

// ------------------------------------------------------------------ identities and knocks

/** What a member's credential says: the display name, when the KeyPackage was made, and a nonce. */
export interface Credential {
  name: string;
  time: number;
  nonce: string;
}

/** A host's long-lived signing key (per link, kept in the host's browser); its hash is the link's `h=`. */
export interface SigningKey {
  publicKey: Bytes;
  signKey: Bytes;
}

export async function newSigningKey(): Promise<SigningKey> {
  const cs = await cipherSuite();
  const pair = await cs.signature.keygen();
  return { publicKey: new Uint8Array(pair.publicKey), signKey: new Uint8Array(pair.signKey) };
}

/** One participant's MLS identity for one call: a fresh KeyPackage (and its private half). */
export interface MemberKeys {
  keyPackage: KeyPackage;
  privatePackage: PrivateKeyPackage;
  /** The encoded KeyPackage (MLSMessage): what the sealed knock carries. */
  bytes: Bytes;
  credential: Credential;
}

export async function newMemberKeys(name: string, now: number, signingKey?: SigningKey): Promise<MemberKeys> {
  const cs = await cipherSuite();
  const credential: Credential = { name, time: now, nonce: toBase64url(globalThis.crypto.getRandomValues(new Uint8Array(12))) };
  const mlsCredential = { credentialType: 'basic' as const, identity: utf8.encode(JSON.stringify({ n: name, t: now, r: credential.nonce })) };
  const made = signingKey
    ? await generateKeyPackageWithKey(mlsCredential, defaultCapabilities(), defaultLifetime, [], { signKey: signingKey.signKey, publicKey: signingKey.publicKey }, cs)
    : await generateKeyPackage(mlsCredential, defaultCapabilities(), defaultLifetime, [], cs);
  const bytes = encodeMlsMessage({ keyPackage: made.publicPackage, wireformat: 'mls_key_package', version: 'mls10' }) as Bytes;
  return { keyPackage: made.publicPackage, privatePackage: made.privatePackage, bytes: new Uint8Array(bytes), credential };
}

/** A knock as an approver sees it, from the opened card. */
export interface KnockCard {
  keyPackage: KeyPackage;
  credential: Credential;
  signatureKeyHash: string;
}

function readCredential(identity: Uint8Array): Credential | undefined {
  try {
    const raw = JSON.parse(utf8Decoder.decode(identity)) as Record<string, unknown>;
    if (typeof raw.n !== 'string' || typeof raw.t !== 'number' || typeof raw.r !== 'string') return undefined;
    return { name: raw.n, time: raw.t, nonce: raw.r };
  } catch {
    return undefined;
  }
}

/** Reads an encoded KeyPackage; undefined when it is not one, or its signature does not verify. */
export async function readKeyPackage(bytes: Uint8Array): Promise<KnockCard | undefined> {
  const decoded = decode(bytes);
  if (!decoded || decoded.wireformat !== 'mls_key_package') return undefined;
  const keyPackage = decoded.keyPackage;
  if (keyPackage.cipherSuite !== CIPHER_SUITE) return undefined;
  const leaf = keyPackage.leafNode;
  if (leaf.credential.credentialType !== 'basic') return undefined;
  const credential = readCredential(leaf.credential.identity);
  if (!credential) return undefined;
  const cs = await cipherSuite();
  if (!(await verifyKeyPackage(keyPackage, cs.signature).catch(() => false))) return undefined;
  return { keyPackage, credential, signatureKeyHash: keyHash(leaf.signaturePublicKey) };
}

/**
 * Runs a throwaway join once (make a group, add a member, join from its Welcome, process a
 * commit), so that the page's first real Welcome runs compiled code: a cold first join took
 * ~65 ms of the ~100 ms between Approve and the guest's keys. Called while the person still looks
 * at the preview or waits in the lobby. Nothing of it is kept.
 */
let warm: Promise<void> | undefined;
export function warmUp(): Promise<void> {
  warm ??= (async () => {
    const rules: CommitRules = { hostKeyHash: '', isGone: () => true, now: () => Date.now() };
    const a = await newMemberKeys('a', Date.now());
    const b = await newMemberKeys('b', Date.now());
    const group = await CallGroup.create(a, rules);
    const card = await readKeyPackage(b.bytes);
    const added = await group.add([card!.keyPackage]);
    group.applyOwn(added);
    const joined = await CallGroup.fromWelcome(added.welcome!, b, rules);
    const removed = await joined.remove([0]);
    await group.process(removed.commit);
    await joined.callKey();
    await joined.safetyCode();
  })().catch(() => undefined);
  return warm;
}

// ------------------------------------------------------------------ the group

/** A member of the call as MLS knows it. */
export interface GroupMember {
  leaf: number;
  name: string | undefined;
  signatureKeyHash: string;
  isHost: boolean;
  isMe: boolean;
  /** When it was added (the adding commit's signed time). */
  addedAt: number;
}

export type CommitRefusal = 'not_allowed' | 'malformed' | 'wrong_epoch' | 'invalid';

/** What decides whether a commit may change the group: every member applies the same rules. */
export interface CommitRules {
  /** The link's pinned host signing key (the `h=` of the link). */
  hostKeyHash: string;
  /** Whether the member with this signature key was made a co-host by the host (an MLS message from the host's leaf). */
  isCoHost?(signatureKeyHash: string): boolean;
  /** Whether the server reports this leaf's participant gone (anyone may then commit its removal). */
  isGone(leaf: number): boolean;
  now(): number;
  approverDelayMs?: number;
  /**
   * Group ids only link holders can make (see keys.ts newGroupId): a Welcome into any other group is
   * refused. Without it (unit tests), group ids are random and any is taken.
   */
  groupIds?: { make(): Promise<Uint8Array>; check(groupId: Uint8Array): Promise<boolean> };
}

/** A commit made by us, applied only once the server has ordered it first for its epoch. */
export interface PendingCommit {
  readonly epoch: number;
  readonly commit: Bytes;
  readonly welcome?: Bytes;
  readonly next: ClientState;
  readonly addedAt: Map<number, number>;
}

export type ProcessResult =
  | { ok: true; added: number[]; removed: number[] }
  | { ok: false; reason: CommitRefusal };

export class CallGroup {
  private constructor(
    private state: ClientState,
    private readonly cs: CiphersuiteImpl,
    private readonly rules: CommitRules,
    /** Leaf index → when it was added. */
    private addedAt: Map<number, number>,
  ) {}

  /** The host, first in the call, makes the group. */
  static async create(me: MemberKeys, rules: CommitRules): Promise<CallGroup> {
    const cs = await cipherSuite();
    const groupId = rules.groupIds ? await rules.groupIds.make() : globalThis.crypto.getRandomValues(new Uint8Array(32));
    const state = await createGroup(groupId, me.keyPackage, me.privatePackage, [], cs);
    return new CallGroup(state, cs, rules, new Map([[0, rules.now()]]));
  }

  /** A newcomer enters from the Welcome alone (it carries the ratchet tree and the members' add times). */
  static async fromWelcome(welcomeBytes: Uint8Array, me: MemberKeys, rules: CommitRules): Promise<CallGroup> {
    const cs = await cipherSuite();
    const decoded = decodeMlsMessage(welcomeBytes, 0)?.[0];
    if (!decoded || decoded.wireformat !== 'mls_welcome') throw new TypeError('not a Welcome');
    const [state, extensions] = await joinGroupWithExtensions(decoded.welcome, me.keyPackage, me.privatePackage, emptyPskIndex, cs);
    if (rules.groupIds && !(await rules.groupIds.check(state.groupContext.groupId))) throw new TypeError('a Welcome into a group no link holder made');
    const addedAt = new Map<number, number>();
    const ext = extensions.find((e) => e.extensionType === ADDED_AT_EXTENSION);
    if (ext) {
      try {
        for (const [leaf, at] of JSON.parse(utf8Decoder.decode(ext.extensionData)) as [number, number][]) {
          if (Number.isSafeInteger(leaf) && Number.isFinite(at)) addedAt.set(leaf, at);
        }
      } catch {
        // No table: everyone counts as added just now (nobody but the host approves for 30 s).
      }
    }
    const group = new CallGroup(state, cs, rules, addedAt);
    const now = rules.now();
    for (const m of group.leaves()) if (!addedAt.has(m.leaf)) addedAt.set(m.leaf, now);
    return group;
  }

  get epoch(): number {
    return Number(this.state.groupContext.epoch);
  }

  get myLeaf(): number {
    return this.state.privatePath.leafIndex;
  }

  get hostPresent(): boolean {
    return this.leaves().some((l) => l.signatureKeyHash === this.rules.hostKeyHash);
  }

  members(): GroupMember[] {
    return this.leaves().map((l) => ({
      leaf: l.leaf,
      name: l.credential?.name,
      signatureKeyHash: l.signatureKeyHash,
      isHost: l.signatureKeyHash === this.rules.hostKeyHash,
      isMe: l.leaf === this.myLeaf,
      addedAt: this.addedAt.get(l.leaf) ?? 0,
    }));
  }

  /** The leaf holding this signature key, if it is in the group. */
  leafOf(signatureKeyHash: string): number | undefined {
    return this.leaves().find((l) => l.signatureKeyHash === signatureKeyHash)?.leaf;
  }

  /** Whether I may let someone in now (the same rule every member checks on my commit). */
  mayApprove(now = this.rules.now()): boolean {
    return this.allowedAdd(this.myLeaf, now, []);
  }

  /** Add these KeyPackages (approve). The Welcome carries the ratchet tree and the add times. */
  async add(keyPackages: KeyPackage[]): Promise<PendingCommit> {
    if (keyPackages.length === 0) throw new TypeError('add() needs at least one KeyPackage');
    // The state it is made on (the group may move on while this runs; applyOwn then refuses it).
    const state = this.state;
    const epoch = this.epoch;
    const now = this.rules.now();
    const addedAt = new Map(this.addedAt);
    for (const leaf of nextLeaves(state, keyPackages.length)) addedAt.set(leaf, now);
    const proposals: Proposal[] = keyPackages.map((keyPackage) => ({ proposalType: 'add', add: { keyPackage } }));
    // The add-time table rides in the Welcome's GroupInfo (signed by us): the newcomer needs it.
    const table: Extension = { extensionType: ADDED_AT_EXTENSION, extensionData: utf8.encode(JSON.stringify([...addedAt])) };
    const made = await createCommit(
      { state, cipherSuite: this.cs },
      { extraProposals: proposals, authenticatedData: uint64(now), ratchetTreeExtension: true, groupInfoExtensions: [table] },
    );
    if (!made.welcome) throw new Error('an Add commit makes a Welcome');
    return {
      epoch,
      commit: bytes(encodeMlsMessage(made.commit)),
      welcome: bytes(encodeMlsMessage({ welcome: made.welcome, wireformat: 'mls_welcome', version: 'mls10' })),
      next: made.newState,
      addedAt,
    };
  }

  /** Remove these leaves (the host removing someone, or anyone for members the server reports gone). */
  async remove(leaves: number[]): Promise<PendingCommit> {
    if (leaves.length === 0) throw new TypeError('remove() needs at least one leaf');
    const state = this.state;
    const epoch = this.epoch;
    const now = this.rules.now();
    const proposals: Proposal[] = leaves.map((removed) => ({ proposalType: 'remove', remove: { removed } }));
    const addedAt = new Map(this.addedAt);
    for (const leaf of leaves) addedAt.delete(leaf);
    const made = await createCommit({ state, cipherSuite: this.cs }, { extraProposals: proposals, authenticatedData: uint64(now) });
    return { epoch, commit: bytes(encodeMlsMessage(made.commit)), next: made.newState, addedAt };
  }

  /** The server ordered our commit first for its epoch: move to the next epoch. */
  applyOwn(pending: PendingCommit): boolean {
    if (pending.epoch !== this.epoch) return false;
    this.state = pending.next;
    this.addedAt = pending.addedAt;
    return true;
  }

  /**
   * Another member's commit, in the server's order. Applied only when its committer may make
   * it; otherwise refused, and the group stays exactly as it was.
   */
  async process(commitBytes: Uint8Array): Promise<ProcessResult> {
    const message = decode(commitBytes);
    if (!message || message.wireformat !== 'mls_private_message') return { ok: false, reason: 'malformed' };
    const pm = message.privateMessage;
    // Not this call's group at all (a Welcome into a group of someone else's making comes with such commits).
    if (!sameBytes(pm.groupId, this.state.groupContext.groupId)) return { ok: false, reason: 'invalid' };
    if (Number(pm.epoch) !== this.epoch) return { ok: false, reason: 'wrong_epoch' };
    const sentAt = readUint64(pm.authenticatedData);
    const now = this.rules.now();
    let verdict: CommitRefusal | undefined;
    const check: IncomingMessageCallback = (incoming) => {
      if (incoming.kind !== 'commit' || incoming.senderLeafIndex === undefined) {
        verdict = 'not_allowed';
        return 'reject';
      }
      verdict = this.judge(incoming.senderLeafIndex, incoming.proposals.map((p) => p.proposal), sentAt, now);
      return verdict ? 'reject' : 'accept';
    };
    const before = new Set(this.leaves().map((l) => l.leaf));
    let result;
    try {
      result = await processPrivateMessage(this.state, pm, emptyPskIndex, this.cs, check);
    } catch {
      return { ok: false, reason: verdict ?? 'invalid' };
    }
    if (verdict) return { ok: false, reason: verdict };
    if (result.kind !== 'newState' || result.actionTaken !== 'accept') return { ok: false, reason: 'invalid' };
    this.state = result.newState;
    const after = new Set(leafIndexes(this.state));
    const added = [...after].filter((l) => !before.has(l));
    const removed = [...before].filter((l) => !after.has(l));
    for (const leaf of removed) this.addedAt.delete(leaf);
    for (const leaf of added) this.addedAt.set(leaf, sentAt ?? now);
    return { ok: true, added, removed };
  }

  /**
   * An application message for the group (chat and the like): an MLS PrivateMessage, readable by the
   * members of this epoch only; the server sees its size.
   */
  async seal(payload: Uint8Array): Promise<Bytes> {
    const made = await createApplicationMessage(this.state, payload, this.cs);
    this.state = made.newState;
    return bytes(encodeMlsMessage({ privateMessage: made.privateMessage, wireformat: 'mls_private_message', version: 'mls10' }));
  }

  /**
   * Another member's application message: its sender's leaf (authenticated by MLS) and payload; undefined
   * when it is not one of this group's (any other kind, a stranger's, tampered, replayed, or from an
   * epoch whose keys are gone). Messages of the previous epochs that are still kept are read too.
   */
  async open(data: Uint8Array): Promise<{ leaf: number; payload: Bytes } | undefined> {
    const message = decode(data);
    if (!message || message.wireformat !== 'mls_private_message') return undefined;
    const pm = message.privateMessage;
    if (pm.contentType !== 'application' || !sameBytes(pm.groupId, this.state.groupContext.groupId)) return undefined;
    const state = this.state;
    const current = pm.epoch === state.groupContext.epoch;
    const epoch = current ? { ...state.keySchedule, secretTree: state.secretTree, ratchetTree: state.ratchetTree, groupContext: state.groupContext } : state.historicalReceiverData.get(pm.epoch);
    if (!epoch) return undefined;
    let result;
    try {
      result = await unprotectPrivateMessage(epoch.senderDataSecret, pm, epoch.secretTree, epoch.ratchetTree, epoch.groupContext, state.clientConfig.keyRetentionConfig, this.cs);
    } catch {
      return undefined;
    }
    const content = result.content.content;
    if (content.contentType !== 'application' || content.sender.senderType !== 'member') return undefined;
    // From an earlier epoch, only a sender still in the group: someone removed since must not be heard.
    if (!current && !sameLeaf(epoch.ratchetTree, state.ratchetTree, content.sender.leafIndex)) return undefined;
    // Keep the advanced secret tree (a message is read once), unless the group moved on meanwhile.
    if (this.state === state) {
      if (current) this.state = { ...state, secretTree: result.tree };
      else this.state = { ...state, historicalReceiverData: new Map(state.historicalReceiverData).set(pm.epoch, { ...(epoch as EpochData), secretTree: result.tree }) };
    }
    return { leaf: content.sender.leafIndex, payload: bytes(content.applicationData) };
  }

  /** This epoch's SFrame base secret (RFC 9605 §5.2) and epoch; the sender index is the leaf index. */
  async callKey(): Promise<CallKey> {
    const secret = await mlsExporter(this.state.keySchedule.exporterSecret, EXPORTER_LABEL, new Uint8Array(0), 32, this.cs);
    return { secret: bytes(secret), epoch: this.epoch };
  }

  /**
   * Twelve digits in three groups, from the epoch authenticator: equal on every screen exactly
   * when everyone holds the same group (same members, same epoch).
   */
  async safetyCode(): Promise<string> {
    const code = await mlsExporter(this.state.keySchedule.epochAuthenticator, SAFETY_LABEL, new Uint8Array(0), 12, this.cs);
    const view = new DataView(bytes(code).buffer);
    return [0, 4, 8].map((at) => String(view.getUint32(at) % 10_000).padStart(4, '0')).join(' ');
  }

  // ------------------------------------------------------------------ rules

  /** Why a commit from `sender` with these proposals is refused; undefined when it is allowed. */
  private judge(sender: number, proposals: Proposal[], sentAt: number | undefined, now: number): CommitRefusal | undefined {
    if (sentAt === undefined || Math.abs(sentAt - now) > COMMIT_CLOCK_SKEW_MS) return 'not_allowed';
    if (proposals.length === 0) return 'not_allowed';
    const senderIsHost = this.isHostLeaf(sender);
    const adds: KeyPackage[] = [];
    for (const p of proposals) {
      if (p.proposalType === 'add') adds.push(p.add.keyPackage);
      else if (p.proposalType === 'remove') {
        // The host removes anyone; others only members the server reports gone.
        if (!senderIsHost && !this.rules.isGone(p.remove.removed)) return 'not_allowed';
      } else return 'not_allowed';
    }
    if (adds.length > 0 && !this.allowedAdd(sender, sentAt, adds)) return 'not_allowed';
    return undefined;
  }

  /**
   * The host and its co-hosts may add; while the host's leaf is absent, so may a member added ≥ 30 s
   * before the commit. Anyone may add the host itself (its KeyPackage is signed with the pinned key).
   */
  private allowedAdd(sender: number, at: number, adds: KeyPackage[]): boolean {
    if (this.isHostLeaf(sender)) return true;
    const senderKey = this.leaves().find((l) => l.leaf === sender)?.signatureKeyHash;
    if (senderKey !== undefined && this.rules.isCoHost?.(senderKey)) return true;
    if (adds.length > 0 && adds.every((kp) => keyHash(kp.leafNode.signaturePublicKey) === this.rules.hostKeyHash)) return true;
    if (this.hostPresent) return false;
    const addedAt = this.addedAt.get(sender);
    return addedAt !== undefined && at - addedAt >= (this.rules.approverDelayMs ?? APPROVER_DELAY_MS);
  }

  private isHostLeaf(leaf: number): boolean {
    return this.leaves().some((l) => l.leaf === leaf && l.signatureKeyHash === this.rules.hostKeyHash);
  }

  private leaves(): { leaf: number; signatureKeyHash: string; credential: Credential | undefined }[] {
    const out = [];
    const tree = this.state.ratchetTree;
    for (let node = 0; node < tree.length; node += 2) {
      const n = tree[node];
      if (n?.nodeType !== 'leaf') continue;
      const cred = n.leaf.credential;
      out.push({
        leaf: node / 2,
        signatureKeyHash: keyHash(n.leaf.signaturePublicKey),
        credential: cred.credentialType === 'basic' ? readCredential(cred.identity) : undefined,
      });
    }
    return out;
  }
}

type Extension = { extensionType: number; extensionData: Uint8Array };
type EpochData = ClientState['historicalReceiverData'] extends Map<bigint, infer D> ? D : never;

/** Where Adds land (RFC 9420 §7.7): the leftmost blank leaves, then past the last leaf. */
function nextLeaves(state: ClientState, count: number): number[] {
  const tree = state.ratchetTree;
  const leafCount = (tree.length + 1) / 2;
  const out: number[] = [];
  for (let leaf = 0; leaf < leafCount && out.length < count; leaf++) if (tree[leaf * 2] === undefined) out.push(leaf);
  for (let leaf = leafCount; out.length < count; leaf++) out.push(leaf);
  return out;
}

function leafIndexes(state: ClientState): number[] {
  const out: number[] = [];
  for (let node = 0; node < state.ratchetTree.length; node += 2) if (state.ratchetTree[node]?.nodeType === 'leaf') out.push(node / 2);
  return out;
}

function bytes(u: Uint8Array): Bytes {
  return u.buffer instanceof ArrayBuffer && u.byteOffset === 0 && u.byteLength === u.buffer.byteLength ? (u as Bytes) : new Uint8Array(u);
}

/** An MLSMessage, or undefined for bytes that are not one (the decoder may throw on garbage). */
function decode(bytes: Uint8Array) {
  try {
    return decodeMlsMessage(bytes, 0)?.[0];
  } catch {
    return undefined;
  }
}

function sameLeaf(then: ClientState['ratchetTree'], now: ClientState['ratchetTree'], leaf: number): boolean {
  const a = then[leaf * 2];
  const b = now[leaf * 2];
  return a?.nodeType === 'leaf' && b?.nodeType === 'leaf' && sameBytes(a.leaf.signaturePublicKey, b.leaf.signaturePublicKey);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

function readUint64(b: Uint8Array): number | undefined {
  if (b.length !== 8) return undefined;
  const view = new DataView(b.buffer, b.byteOffset, 8);
  const high = view.getUint32(0);
  if (high >= 2 ** 21) return undefined;
  return high * 2 ** 32 + view.getUint32(4);
}


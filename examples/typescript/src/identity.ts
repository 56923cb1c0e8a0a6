// Trusting a posfleet server's signed merchant identity, from the .proto
// alone.
//
// A terminal is given the fingerprint of the server's identity signing key
// out of band (`posfleet admin terminals provision` prints it beside the
// enrollment code; AdminService.ProvisionTerminal returns it as
// signing_key_fingerprint). It trusts that key, and every newer key the
// trusted keys endorsed (SigningKey.endorsement, from
// TerminalService.GetSigningKeys), and nothing else: never a key only
// because the server sent it, never the key an identity carries. An
// identity is then checked as MerchantIdentity's comment in common.proto
// says: the key ID names the key, the key is trusted and was valid when the
// identity was issued, the Ed25519 signature of each payload holds, and each
// payload is exactly the canonical encoding of the structured fields
// (version 2 covers every field, the address and currency included; version
// 1 is checked too when present).
//
// Every refusal is a Refused with a reason, so that the shared test vectors
// (proto/posfleet/v1/testdata/identity_vectors.json, see vectors.ts) can
// check not only that a bad identity is refused but why.

import * as crypto from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

export const HEADER_V1 = "posfleet-identity-v1";
export const HEADER_V2 = "posfleet-identity-v2";
export const ENDORSEMENT_HEADER = "posfleet-signing-key-v1";

/** Why an identity or a key set was refused. */
export type Reason =
  | "key_id" // the key is malformed or key_id does not name it
  | "untrusted_key" // signed by a key the pin does not lead to
  | "signature" // the Ed25519 signature does not hold
  | "payload" // the payload is not the canonical encoding of the fields
  | "missing_v2" // no version 2 payload: address and currency unsigned
  | "key_window" // issued outside the signing key's validity window
  | "pinned_key_missing"; // the key set does not hold the pinned key

/** An identity or key set that must not be trusted, and why. */
export class Refused extends Error {
  constructor(readonly reason: Reason, message: string) {
    super(message);
  }
}

/** A 64-bit integer as grpc-js hands it out: a number, or its decimal
 * string when loaded with longs: String. */
export type Int64 = number | string | bigint;

export interface Timestamp {
  seconds: Int64;
  nanos?: number;
}

export interface Address {
  line1?: string;
  line2?: string;
  city?: string;
  region?: string;
  postal_code?: string;
  country?: string;
}

/** posfleet.v1.MerchantIdentity with the .proto field names. */
export interface MerchantIdentity {
  merchant_id: string;
  legal_name: string;
  display_name: string;
  mcc: string;
  store_id: string;
  store_name: string;
  address?: Address | null;
  terminal_id: string;
  identity_version: Int64;
  issue_time?: Timestamp | null;
  key_id: string;
  signature: Uint8Array;
  signed_payload: Uint8Array;
  public_key: Uint8Array;
  currency: string;
  signed_payload_v2: Uint8Array;
  signature_v2: Uint8Array;
}

/** posfleet.v1.SigningKey with the .proto field names. */
export interface SigningKey {
  key_id: string;
  public_key: Uint8Array;
  fingerprint: string;
  status: string;
  create_time?: Timestamp | null;
  retire_time?: Timestamp | null;
  endorsed_by_key_id: string;
  endorsement: Uint8Array;
}

/** The SHA-256 of a public key in lower-case hex: what operators read out
 * and terminals pin. Its first 16 characters are the key ID. */
export function fingerprint(publicKey: Uint8Array): string {
  return crypto.createHash("sha256").update(publicKey).digest("hex");
}

/** A Timestamp as RFC 3339 UTC truncated to whole seconds (the fraction is
 * dropped, never rounded up), or "" when it is unset. */
export function rfc3339Seconds(ts?: Timestamp | null): string {
  if (!ts) return "";
  return new Date(Number(ts.seconds) * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** A uint64 in decimal. A number beyond 2^53 has lost digits already:
 * refuse rather than sign off on a rounded value. */
function decimal(v: Int64): string {
  if (typeof v === "number" && !Number.isSafeInteger(v)) {
    throw new Refused("payload", "identity_version beyond a JS number's exact range (decode 64-bit integers as strings)");
  }
  return v.toString();
}

function escape(value: string, version: 1 | 2): string {
  value = value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
  return version === 2 ? value.replace(/\r/g, "\\r") : value;
}

function encode(header: string, version: 1 | 2, fields: [string, string][]): Buffer {
  return Buffer.from([header, ...fields.map(([name, value]) => `${name}=${escape(value ?? "", version)}`)].join("\n") + "\n", "utf8");
}

/** The canonical version 1 payload of an identity's fields. */
export function payloadV1(id: MerchantIdentity): Buffer {
  return encode(HEADER_V1, 1, [
    ["merchant_id", id.merchant_id],
    ["legal_name", id.legal_name],
    ["display_name", id.display_name],
    ["mcc", id.mcc],
    ["store_id", id.store_id],
    ["store_name", id.store_name],
    ["terminal_id", id.terminal_id],
    ["identity_version", decimal(id.identity_version)],
    ["issue_time", rfc3339Seconds(id.issue_time)],
    ["key_id", id.key_id],
  ]);
}

/** The canonical version 2 payload of an identity's fields. */
export function payloadV2(id: MerchantIdentity): Buffer {
  const a = id.address ?? {};
  return encode(HEADER_V2, 2, [
    ["merchant_id", id.merchant_id],
    ["legal_name", id.legal_name],
    ["display_name", id.display_name],
    ["mcc", id.mcc],
    ["currency", id.currency],
    ["store_id", id.store_id],
    ["store_name", id.store_name],
    ["address_line1", a.line1 ?? ""],
    ["address_line2", a.line2 ?? ""],
    ["address_city", a.city ?? ""],
    ["address_region", a.region ?? ""],
    ["address_postal_code", a.postal_code ?? ""],
    ["address_country", a.country ?? ""],
    ["terminal_id", id.terminal_id],
    ["identity_version", decimal(id.identity_version)],
    ["issue_time", rfc3339Seconds(id.issue_time)],
    ["key_id", id.key_id],
  ]);
}

/** The bytes SigningKey.endorsement signs for k. */
export function endorsementPayload(k: SigningKey): Buffer {
  return Buffer.from(
    `${ENDORSEMENT_HEADER}\nkey_id=${k.key_id}\npublic_key=${Buffer.from(k.public_key).toString("hex")}\n` +
      `create_time=${rfc3339Seconds(k.create_time)}\n`,
    "utf8",
  );
}

export function ed25519Valid(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  try {
    const key = crypto.createPublicKey({
      key: { kty: "OKP", crv: "Ed25519", x: Buffer.from(publicKey).toString("base64url") },
      format: "jwk",
    });
    return crypto.verify(null, message, key, signature);
  } catch {
    return false;
  }
}

const len = (b?: Uint8Array | null) => (b ? b.length : 0);

function namesItself(publicKey: Uint8Array, keyId: string): boolean {
  return len(publicKey) === 32 && fingerprint(publicKey).slice(0, 16) === keyId;
}

function checkPayload(pub: Uint8Array, payload: Uint8Array, signature: Uint8Array, want: Buffer, version: 1 | 2): void {
  if (!ed25519Valid(pub, payload ?? Buffer.alloc(0), signature ?? Buffer.alloc(0))) {
    throw new Refused("signature", `identity v${version} signature invalid`);
  }
  const got = Buffer.from(payload);
  if (got.equals(want)) return;
  const gotLines = got.toString("utf8").split("\n");
  const wantLines = want.toString("utf8").split("\n");
  wantLines.forEach((line, i) => {
    if (gotLines[i] !== line) {
      throw new Refused("payload", `identity v${version} payload line ${i} (${line.split("=")[0]}) differs from the structured fields`);
    }
  });
  throw new Refused("payload", `identity v${version} payload has lines beyond the last field`);
}

/** The identity's public key, once its key_id names it and it is one of
 * trusted (raw 32-byte keys). */
export function identityKey(id: MerchantIdentity, trusted: Uint8Array[]): Uint8Array {
  const pub = Buffer.from(id.public_key ?? []);
  if (pub.length !== 32) throw new Refused("key_id", "identity public key missing or malformed");
  if (fingerprint(pub).slice(0, 16) !== id.key_id) throw new Refused("key_id", "identity key_id does not name its public key");
  if (!trusted.some((k) => pub.equals(Buffer.from(k)))) {
    throw new Refused("untrusted_key", "identity is not signed by the pinned server key or a key it endorsed");
  }
  return pub;
}

/** Checks the version 1 payload and signature (which cover neither the
 * address nor the currency), trusting the identity's key only if it is one
 * of trusted. */
export function verifyV1(id: MerchantIdentity, trusted: Uint8Array[]): void {
  const pub = identityKey(id, trusted);
  checkPayload(pub, id.signed_payload, id.signature, payloadV1(id), 1);
}

/** Checks the version 2 payload and signature, which cover every field,
 * trusting the identity's key only if it is one of trusted. */
export function verifyV2(id: MerchantIdentity, trusted: Uint8Array[]): void {
  const pub = identityKey(id, trusted);
  if (!len(id.signed_payload_v2) && !len(id.signature_v2)) {
    throw new Refused("missing_v2", "identity has no version 2 payload: its address and currency are not signed");
  }
  checkPayload(pub, id.signed_payload_v2, id.signature_v2, payloadV2(id), 2);
}

/** The keys of a GetSigningKeys answer that a terminal which pinned the
 * fingerprint pinned may trust, in the order of keys: the pinned key, and
 * every key whose endorsement is a valid signature of endorsementPayload by
 * an already trusted key (named by endorsed_by_key_id), repeated until no
 * more keys are trusted. Refuses a set without the pinned key. */
export function trustedSigningKeys(pinned: string, keys: SigningKey[]): SigningKey[] {
  pinned = pinned.trim().toLowerCase();
  const trusted = new Map<string, SigningKey>();
  for (const k of keys) {
    if (len(k.public_key) === 32 && fingerprint(k.public_key) === pinned) trusted.set(k.key_id, k);
  }
  if (trusted.size === 0) {
    throw new Refused("pinned_key_missing", "the server's key set does not hold the pinned signing key");
  }
  for (let grew = true; grew; ) {
    grew = false;
    for (const k of keys) {
      const by = trusted.get(k.endorsed_by_key_id);
      if (trusted.has(k.key_id) || !by || !namesItself(k.public_key, k.key_id)) continue;
      if (ed25519Valid(by.public_key, endorsementPayload(k), k.endorsement ?? Buffer.alloc(0))) {
        trusted.set(k.key_id, k);
        grew = true;
      }
    }
  }
  return keys.filter((k) => trusted.get(k.key_id) === k);
}

/** What a terminal trusts: the pinned fingerprint and the keys it leads to
 * in the server's key set, fetched again when an identity names a key not
 * yet known (after a rotation). */
export class PinnedTrust {
  readonly pinned: string;
  keys = new Map<string, SigningKey>();

  constructor(pinnedFingerprint: string) {
    this.pinned = pinnedFingerprint.trim().toLowerCase();
  }

  /** Recomputes the trusted keys from a GetSigningKeys answer. */
  update(keys: SigningKey[]): void {
    for (const k of keys) {
      if (k.fingerprint && k.fingerprint !== fingerprint(k.public_key)) {
        throw new Refused("key_id", `signing key ${k.key_id}: fingerprint does not match its public key`);
      }
    }
    const trusted = trustedSigningKeys(this.pinned, keys);
    for (const k of trusted) {
      if (!namesItself(k.public_key, k.key_id)) throw new Refused("key_id", `signing key ${k.key_id}: key_id does not name its public key`);
    }
    this.keys = new Map(trusted.map((k) => [k.key_id, k]));
  }

  knows(keyId: string): boolean {
    return this.keys.has(keyId);
  }

  /** Verifies an identity as a terminal must before it believes it:
   * version 2 required, version 1 too when present, signed by a trusted key
   * within that key's validity window (issued no earlier than the key was
   * created and, for a retired key, no later than it was retired). Returns
   * the signing key. */
  verify(id: MerchantIdentity): SigningKey {
    const key = this.keys.get(id.key_id);
    const trusted = key ? [key.public_key] : [];
    verifyV2(id, trusted);
    if (len(id.signed_payload) || len(id.signature)) verifyV1(id, trusted);
    const k = key as SigningKey;
    const issued = Number(id.issue_time?.seconds ?? 0);
    if (k.create_time && issued < Number(k.create_time.seconds)) {
      throw new Refused("key_window", `identity issued at ${rfc3339Seconds(id.issue_time)}, before key ${k.key_id} was created`);
    }
    if (k.retire_time && issued > Number(k.retire_time.seconds)) {
      throw new Refused("key_window", `identity issued at ${rfc3339Seconds(id.issue_time)}, after key ${k.key_id} was retired`);
    }
    return k;
  }
}

/** A TerminalService client on channel for the identity calls
 * (GetSigningKeys, VerifyMerchant) that decodes 64-bit integers as decimal
 * strings, so that identity_version reaches the payload check exactly. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function identityClient(protoRoot: string, channel: grpc.Channel, creds: grpc.ChannelCredentials): any {
  const definition = protoLoader.loadSync(["posfleet/v1/terminal.proto"], {
    keepCase: true, longs: String, enums: String, defaults: true, includeDirs: [protoRoot],
  });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const Service = (grpc.loadPackageDefinition(definition) as any).posfleet.v1.TerminalService;
  return new Service(channel.getTarget(), creds, { channelOverride: channel });
}

// Runs the shared identity test vectors through this example's verifier.
//
// Usage: node dist/vectors.js [PATH]
//   (default: proto/posfleet/v1/testdata/identity_vectors.json)
//
// Each identity vector is verified twice, trusting only the key whose
// fingerprint it pins: as a version 2 verifier (verifyV2) and as a version
// 1 verifier that sees only the version 1 fields (verifyV1). Each key-set
// vector goes through trustedSigningKeys. A verdict must equal the vector's
// valid_v2, valid_v1 or trusted_key_ids. One line per vector goes to
// stderr; the last line on stdout is a JSON summary with every verdict
// ("ok" or the reason of the refusal) and the counts. The exit status is 0
// only when every vector agreed.

import * as fs from "node:fs";
import * as path from "node:path";
import {
  fingerprint, MerchantIdentity, Refused, SigningKey, Timestamp, trustedSigningKeys, verifyV1, verifyV2,
} from "./identity";

const DEFAULT = path.resolve(__dirname, "../../../proto/posfleet/v1/testdata/identity_vectors.json");

// ---- the protobuf JSON mapping, for the two messages the vectors hold ----

const bytes = (v?: string) => Buffer.from(v ?? "", "base64");

/** An RFC 3339 time in UTC ("Z"), possibly with a fraction of a second. */
function timestamp(v?: string): Timestamp | null {
  if (v === undefined) return null;
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?Z$/.exec(v);
  if (!m) throw new Error(`vectors: timestamp ${JSON.stringify(v)} is not RFC 3339 UTC`);
  return { seconds: Date.parse(`${m[1]}Z`) / 1000, nanos: Number((m[2] ?? "").padEnd(9, "0")) };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function identity(j: any): MerchantIdentity {
  return {
    merchant_id: j.merchant_id ?? "",
    legal_name: j.legal_name ?? "",
    display_name: j.display_name ?? "",
    mcc: j.mcc ?? "",
    store_id: j.store_id ?? "",
    store_name: j.store_name ?? "",
    address: j.address ?? null,
    terminal_id: j.terminal_id ?? "",
    identity_version: String(j.identity_version ?? "0"), // uint64: a decimal string in JSON
    issue_time: timestamp(j.issue_time),
    key_id: j.key_id ?? "",
    signature: bytes(j.signature),
    signed_payload: bytes(j.signed_payload),
    public_key: bytes(j.public_key),
    currency: j.currency ?? "",
    signed_payload_v2: bytes(j.signed_payload_v2),
    signature_v2: bytes(j.signature_v2),
  };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function signingKey(j: any): SigningKey {
  return {
    key_id: j.key_id ?? "",
    public_key: bytes(j.public_key),
    fingerprint: j.fingerprint ?? "",
    status: j.status ?? "SIGNING_KEY_STATUS_UNSPECIFIED",
    create_time: timestamp(j.create_time),
    retire_time: timestamp(j.retire_time),
    endorsed_by_key_id: j.endorsed_by_key_id ?? "",
    endorsement: bytes(j.endorsement),
  };
}

function verdict(fn: () => void): string {
  try {
    fn();
    return "ok";
  } catch (e) {
    if (e instanceof Refused) return e.reason;
    throw e;
  }
}

/** What a verifier written before version 2 sees of an identity. */
function v1Only(id: MerchantIdentity): MerchantIdentity {
  return { ...id, currency: "", signed_payload_v2: Buffer.alloc(0), signature_v2: Buffer.alloc(0) };
}

function main(argv: string[]): number {
  const vectors = JSON.parse(fs.readFileSync(argv[0] ?? DEFAULT, "utf8"));
  const keys = new Map<string, Buffer>();
  for (const k of vectors.keys) {
    const pub = Buffer.from(k.public_key_hex, "hex");
    if (fingerprint(pub) !== k.fingerprint) {
      process.stderr.write(`vectors: key ${k.name} does not have fingerprint ${k.fingerprint}\n`);
      return 1;
    }
    keys.set(k.fingerprint, pub);
  }
  const summary = { identities: [] as object[], key_sets: [] as object[], agreed: 0, disagreed: 0 };
  const judge = (name: string, got: unknown, want: unknown) => {
    const ok = JSON.stringify(got) === JSON.stringify(want);
    if (ok) summary.agreed++;
    else summary.disagreed++;
    process.stderr.write(`${ok ? "PASS" : "FAIL"}  ${name}: ${JSON.stringify(got)}, want ${JSON.stringify(want)}\n`);
  };

  for (const vec of vectors.identities) {
    const id = identity(vec.identity);
    const pinned = keys.get(vec.pinned_fingerprint);
    const trusted = pinned ? [pinned] : [];
    const v2 = verdict(() => verifyV2(id, trusted));
    const v1 = verdict(() => verifyV1(v1Only(id), trusted));
    judge(`${vec.name} v2`, v2 === "ok", vec.valid_v2);
    judge(`${vec.name} v1`, v1 === "ok", vec.valid_v1);
    summary.identities.push({ name: vec.name, v1, v2 });
  }

  for (const vec of vectors.key_sets) {
    const set = (vec.keys as unknown[]).map(signingKey);
    let got: string[] = [];
    let result = "ok";
    try {
      got = trustedSigningKeys(vec.pinned_fingerprint, set).map((k) => k.key_id);
    } catch (e) {
      if (!(e instanceof Refused)) throw e;
      result = e.reason;
    }
    judge(`key set ${vec.name}`, got, vec.trusted_key_ids);
    summary.key_sets.push({ name: vec.name, trusted: got, result });
  }

  process.stderr.write(`vectors: ${summary.agreed} verdicts agree, ${summary.disagreed} disagree\n`);
  process.stdout.write(JSON.stringify(summary) + "\n");
  return summary.disagreed === 0 ? 0 : 1;
}

process.exit(main(process.argv.slice(2)));

#!/usr/bin/env python3
"""Runs the shared identity test vectors through this example's verifier.

Usage: vectors.py [PATH]   (default: proto/posfleet/v1/testdata/identity_vectors.json)

Each identity vector is verified twice, trusting only the key whose
fingerprint it pins: as a version 2 verifier (identity.verify_v2) and as a
version 1 verifier that sees only the version 1 fields (identity.verify_v1).
Each key-set vector goes through identity.trusted_signing_keys. A verdict
must equal the vector's valid_v2, valid_v1 or trusted_key_ids. One line per
vector goes to stderr; the last line on stdout is a JSON summary with every
verdict ("ok" or the reason of the refusal) and the counts. The exit status
is 0 only when every vector agreed.
"""

import json
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "gen"))

from google.protobuf import json_format  # noqa: E402
from posfleet.v1 import common_pb2, terminal_pb2  # noqa: E402

import identity  # noqa: E402

DEFAULT = os.path.join(here, "..", "..", "proto", "posfleet", "v1", "testdata",
                       "identity_vectors.json")


def verdict(fn, *args):
    try:
        fn(*args)
        return "ok"
    except identity.Refused as r:
        return r.reason


def v1_only(ident):
    """What a verifier written before version 2 sees of an identity."""
    out = common_pb2.MerchantIdentity()
    out.CopyFrom(ident)
    out.ClearField("currency")
    out.ClearField("signed_payload_v2")
    out.ClearField("signature_v2")
    return out


def main(argv):
    path = argv[0] if argv else DEFAULT
    with open(path, encoding="utf-8") as f:
        vectors = json.load(f)
    keys = {k["fingerprint"]: bytes.fromhex(k["public_key_hex"]) for k in vectors["keys"]}
    for fp, pub in keys.items():
        if identity.fingerprint(pub) != fp:
            print(f"vectors: key {fp} does not have that fingerprint", file=sys.stderr)
            return 1
    summary = {"identities": [], "key_sets": [], "agreed": 0, "disagreed": 0}

    def judge(name, got, want):
        ok = got == want
        summary["agreed" if ok else "disagreed"] += 1
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {got}, want {want}", file=sys.stderr)

    for vec in vectors["identities"]:
        ident = json_format.Parse(json.dumps(vec["identity"]), common_pb2.MerchantIdentity())
        trusted = [keys[vec["pinned_fingerprint"]]] if vec["pinned_fingerprint"] in keys else []
        v2 = verdict(identity.verify_v2, ident, trusted)
        v1 = verdict(identity.verify_v1, v1_only(ident), trusted)
        judge(f"{vec['name']} v2", v2 == "ok", vec["valid_v2"])
        judge(f"{vec['name']} v1", v1 == "ok", vec["valid_v1"])
        summary["identities"].append({"name": vec["name"], "v1": v1, "v2": v2})

    for vec in vectors["key_sets"]:
        keyset = [json_format.Parse(json.dumps(k), terminal_pb2.SigningKey()) for k in vec["keys"]]
        try:
            got = [k.key_id for k in identity.trusted_signing_keys(vec["pinned_fingerprint"], keyset)]
            reason = "ok"
        except identity.Refused as r:
            got, reason = [], r.reason
        judge(f"key set {vec['name']}", got, vec["trusted_key_ids"])
        summary["key_sets"].append({"name": vec["name"], "trusted": got, "result": reason})

    print(f"vectors: {summary['agreed']} verdicts agree, {summary['disagreed']} disagree",
          file=sys.stderr)
    print(json.dumps(summary, sort_keys=True))
    return 0 if summary["disagreed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

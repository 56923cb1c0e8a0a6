"""Trusting a posfleet server's signed merchant identity, from the .proto alone.

A terminal is given the fingerprint of the server's identity signing key out
of band (`posfleet admin terminals provision` prints it beside the enrollment
code; AdminService.ProvisionTerminal returns it as signing_key_fingerprint).
It trusts that key, and every newer key the trusted keys endorsed
(SigningKey.endorsement, TerminalService.GetSigningKeys), and nothing else:
never a key only because the server sent it, never the key an identity
carries. An identity is then checked as MerchantIdentity's comment in
common.proto says: the key ID names the key, the key is trusted and was
valid when the identity was issued, the Ed25519 signature of each payload
holds, and each payload is exactly the canonical encoding of the structured
fields (version 2 covers every field, the address and currency included;
version 1 is checked too when present).

Every refusal is a Refused with a reason, one of REASONS, so that the shared
test vectors (proto/posfleet/v1/testdata/identity_vectors.json, see
vectors.py) can check not only that a bad identity is refused but why.
"""

import datetime
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

HEADER_V1 = "posfleet-identity-v1"
HEADER_V2 = "posfleet-identity-v2"
ENDORSEMENT_HEADER = "posfleet-signing-key-v1"

# Why an identity or a key set was refused.
REASONS = (
    "key_id",             # the key is malformed or key_id does not name it
    "untrusted_key",      # signed by a key the pin does not lead to
    "signature",          # the Ed25519 signature does not hold
    "payload",            # the payload is not the canonical encoding of the fields
    "missing_v2",         # no version 2 payload: address and currency unsigned
    "key_window",         # issued outside the signing key's validity window
    "pinned_key_missing",  # the key set does not hold the pinned key
)


class Refused(Exception):
    """An identity or key set that must not be trusted, and why."""

    def __init__(self, reason, message):
        assert reason in REASONS, reason
        super().__init__(message)
        self.reason = reason


def fingerprint(public_key):
    """The SHA-256 of a public key in lower-case hex: what operators read out
    and terminals pin. Its first 16 characters are the key ID."""
    return hashlib.sha256(bytes(public_key)).hexdigest()


def rfc3339_seconds(ts):
    """A Timestamp as RFC 3339 UTC truncated to whole seconds (the fraction
    is dropped, never rounded up), or "" when it is unset (None)."""
    if ts is None:
        return ""
    t = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + \
        datetime.timedelta(seconds=ts.seconds)
    return (f"{t.year:04d}-{t.month:02d}-{t.day:02d}"
            f"T{t.hour:02d}:{t.minute:02d}:{t.second:02d}Z")


def _field(msg, name):
    return getattr(msg, name) if msg.HasField(name) else None


def _escape(value, version):
    value = value.replace("\\", "\\\\").replace("\n", "\\n")
    if version == 2:
        value = value.replace("\r", "\\r")
    return value


def _encode(header, version, fields):
    lines = [header] + [f"{name}={_escape(value, version)}" for name, value in fields]
    return ("\n".join(lines) + "\n").encode("utf-8")


def payload_v1(ident):
    """The canonical version 1 payload of a MerchantIdentity's fields."""
    return _encode(HEADER_V1, 1, [
        ("merchant_id", ident.merchant_id), ("legal_name", ident.legal_name),
        ("display_name", ident.display_name), ("mcc", ident.mcc),
        ("store_id", ident.store_id), ("store_name", ident.store_name),
        ("terminal_id", ident.terminal_id),
        ("identity_version", str(ident.identity_version)),
        ("issue_time", rfc3339_seconds(_field(ident, "issue_time"))),
        ("key_id", ident.key_id)])


def payload_v2(ident):
    """The canonical version 2 payload of a MerchantIdentity's fields."""
    a = ident.address  # all fields empty when unset
    return _encode(HEADER_V2, 2, [
        ("merchant_id", ident.merchant_id), ("legal_name", ident.legal_name),
        ("display_name", ident.display_name), ("mcc", ident.mcc),
        ("currency", ident.currency),
        ("store_id", ident.store_id), ("store_name", ident.store_name),
        ("address_line1", a.line1), ("address_line2", a.line2), ("address_city", a.city),
        ("address_region", a.region), ("address_postal_code", a.postal_code),
        ("address_country", a.country),
        ("terminal_id", ident.terminal_id),
        ("identity_version", str(ident.identity_version)),
        ("issue_time", rfc3339_seconds(_field(ident, "issue_time"))),
        ("key_id", ident.key_id)])


def endorsement_payload(key):
    """The bytes SigningKey.endorsement signs for key."""
    return (f"{ENDORSEMENT_HEADER}\nkey_id={key.key_id}\npublic_key={bytes(key.public_key).hex()}\n"
            f"create_time={rfc3339_seconds(_field(key, 'create_time'))}\n").encode("utf-8")


def ed25519_valid(public_key, message, signature):
    try:
        Ed25519PublicKey.from_public_bytes(bytes(public_key)).verify(bytes(signature), bytes(message))
        return True
    except (InvalidSignature, ValueError):
        return False


def _names_itself(public_key, key_id):
    return len(public_key) == 32 and fingerprint(public_key)[:16] == key_id


def _check_payload(pub, payload, signature, want, version):
    if not ed25519_valid(pub, payload, signature):
        raise Refused("signature", f"identity v{version} signature invalid")
    if bytes(payload) == want:
        return
    got, exp = bytes(payload).split(b"\n"), want.split(b"\n")
    for i, line in enumerate(exp):
        if i >= len(got) or got[i] != line:
            name = line.split(b"=", 1)[0].decode()
            raise Refused("payload", f"identity v{version} payload line {i} ({name}) "
                                     "differs from the structured fields")
    raise Refused("payload", f"identity v{version} payload has lines beyond the last field")


def identity_key(ident, trusted):
    """The identity's public key, once its key_id names it and it is one of
    trusted (raw 32-byte keys)."""
    pub = bytes(ident.public_key)
    if len(pub) != 32:
        raise Refused("key_id", "identity public key missing or malformed")
    if fingerprint(pub)[:16] != ident.key_id:
        raise Refused("key_id", "identity key_id does not name its public key")
    if pub not in [bytes(k) for k in trusted]:
        raise Refused("untrusted_key", "identity is not signed by the pinned server key "
                                       "or a key it endorsed")
    return pub


def verify_v1(ident, trusted):
    """Checks the version 1 payload and signature (which cover neither the
    address nor the currency) with the identity's key trusted only if it
    is one of trusted."""
    pub = identity_key(ident, trusted)
    _check_payload(pub, ident.signed_payload, ident.signature, payload_v1(ident), 1)


def verify_v2(ident, trusted):
    """Checks the version 2 payload and signature, which cover every field,
    with the identity's key trusted only if it is one of trusted."""
    pub = identity_key(ident, trusted)
    if not ident.signed_payload_v2 and not ident.signature_v2:
        raise Refused("missing_v2", "identity has no version 2 payload: its address and "
                                    "currency are not signed")
    _check_payload(pub, ident.signed_payload_v2, ident.signature_v2, payload_v2(ident), 2)


def trusted_signing_keys(pinned, keys):
    """The SigningKeys of a GetSigningKeys answer that a terminal which pinned
    the fingerprint pinned may trust, in the order of keys: the pinned key,
    and every key whose endorsement is a valid signature of
    endorsement_payload by an already trusted key (named by
    endorsed_by_key_id), repeated until no more keys are trusted. Refuses a
    set without the pinned key."""
    pinned = pinned.strip().lower()
    trusted = {}
    for k in keys:
        if len(k.public_key) == 32 and fingerprint(k.public_key) == pinned:
            trusted[k.key_id] = k
    if not trusted:
        raise Refused("pinned_key_missing", "the server's key set does not hold the pinned "
                                            "signing key")
    grew = True
    while grew:
        grew = False
        for k in keys:
            by = trusted.get(k.endorsed_by_key_id)
            if k.key_id in trusted or by is None or not _names_itself(k.public_key, k.key_id):
                continue
            if ed25519_valid(by.public_key, endorsement_payload(k), k.endorsement):
                trusted[k.key_id] = k
                grew = True
    return [k for k in keys if k.key_id in trusted and trusted[k.key_id] is k]


class PinnedTrust:
    """What a terminal trusts: the pinned fingerprint and the keys it leads
    to in the server's key set, fetched again when an identity names a key
    not yet known (after a rotation)."""

    def __init__(self, pinned_fingerprint):
        self.pinned = pinned_fingerprint.strip().lower()
        self.keys = {}  # key_id -> trusted SigningKey

    def update(self, keys):
        """Recomputes the trusted keys from a GetSigningKeys answer."""
        for k in keys:
            if k.fingerprint and k.fingerprint != fingerprint(k.public_key):
                raise Refused("key_id", f"signing key {k.key_id}: fingerprint does not match "
                                        "its public key")
        trusted = trusted_signing_keys(self.pinned, keys)
        for k in trusted:
            if not _names_itself(k.public_key, k.key_id):
                raise Refused("key_id", f"signing key {k.key_id}: key_id does not name its "
                                        "public key")
        self.keys = {k.key_id: k for k in trusted}

    def knows(self, key_id):
        return key_id in self.keys

    def verify(self, ident):
        """Verifies an identity as a terminal must before it believes it:
        version 2 required, version 1 too when present, signed by a trusted
        key within that key's validity window (issued no earlier than the
        key was created and, for a retired key, no later than it was
        retired). Returns the signing key."""
        key = self.keys.get(ident.key_id)
        trusted = [key.public_key] if key is not None else []
        verify_v2(ident, trusted)
        if ident.signed_payload or ident.signature:
            verify_v1(ident, trusted)
        issued = ident.issue_time.seconds
        if key.HasField("create_time") and issued < key.create_time.seconds:
            raise Refused("key_window", f"identity issued at {rfc3339_seconds(ident.issue_time)}, "
                                        f"before key {key.key_id} was created")
        if key.HasField("retire_time") and issued > key.retire_time.seconds:
            raise Refused("key_window", f"identity issued at {rfc3339_seconds(ident.issue_time)}, "
                                        f"after key {key.key_id} was retired")
        return key

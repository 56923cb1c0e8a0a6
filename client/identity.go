package client

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// Payload headers of the identity versions (see MerchantIdentity).
const (
	identityV1Header  = "posfleet-identity-v1"
	identityV2Header  = "posfleet-identity-v2"
	endorsementHeader = "posfleet-signing-key-v1"
)

// Fingerprint returns the fingerprint of an Ed25519 public key: its SHA-256
// in lower-case hex, as AdminService.ProvisionTerminal shows it for pinning.
func Fingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:])
}

// VerifyIdentity checks a signed merchant identity as documented on
// MerchantIdentity: the key ID names the public key, and the Ed25519
// signature of each payload the identity carries is valid and the payload
// is the canonical encoding of the structured fields. Version 2 (which
// covers the address and currency) is checked whenever present; version 1
// is checked too, so an identity from a server without version 2 still
// verifies. With trusted keys given, the identity's public key must be one
// of them (pin the server's keys to detect a forged server; see
// TrustedSigningKeys); use VerifyIdentityV2 to also refuse an identity
// without version 2.
func VerifyIdentity(id *pb.MerchantIdentity, trusted ...ed25519.PublicKey) error {
	pub, err := identityKey(id, trusted)
	if err != nil {
		return err
	}
	if err := checkPayload(pub, id.GetSignedPayload(), id.GetSignature(), identityV1Payload(id), "v1"); err != nil {
		return err
	}
	if id.GetSignedPayloadV2() == nil && id.GetSignatureV2() == nil {
		return nil
	}
	return checkPayload(pub, id.GetSignedPayloadV2(), id.GetSignatureV2(), identityV2Payload(id), "v2")
}

// VerifyIdentityV2 checks an identity's version 2 payload and signature,
// which cover every field, with the identity's key trusted only if it is
// one of trusted. An identity without version 2 is refused.
func VerifyIdentityV2(id *pb.MerchantIdentity, trusted ...ed25519.PublicKey) error {
	if len(trusted) == 0 {
		return errors.New("client: no trusted signing key given")
	}
	pub, err := identityKey(id, trusted)
	if err != nil {
		return err
	}
	return checkPayload(pub, id.GetSignedPayloadV2(), id.GetSignatureV2(), identityV2Payload(id), "v2")
}

// identityKey returns the identity's public key after checking that its key
// ID names it and, with trusted keys given, that it is one of them.
func identityKey(id *pb.MerchantIdentity, trusted []ed25519.PublicKey) (ed25519.PublicKey, error) {
	pub := ed25519.PublicKey(id.GetPublicKey())
	if len(pub) != ed25519.PublicKeySize {
		return nil, errors.New("client: identity public key missing or malformed")
	}
	if Fingerprint(pub)[:16] != id.GetKeyId() {
		return nil, errors.New("client: identity key_id does not name its public key")
	}
	if len(trusted) > 0 {
		ok := false
		for _, k := range trusted {
			ok = ok || bytes.Equal(k, pub)
		}
		if !ok {
			return nil, errors.New("client: identity signed by an untrusted key")
		}
	}
	return pub, nil
}

// checkPayload verifies sig over payload with pub and that payload is want,
// the canonical encoding of the structured fields.
func checkPayload(pub ed25519.PublicKey, payload, sig, want []byte, version string) error {
	if !ed25519.Verify(pub, payload, sig) {
		return fmt.Errorf("client: identity %s signature invalid", version)
	}
	if bytes.Equal(payload, want) {
		return nil
	}
	got, exp := strings.Split(string(payload), "\n"), strings.Split(string(want), "\n")
	for i := range exp {
		if i >= len(got) || got[i] != exp[i] {
			name, _, _ := strings.Cut(exp[i], "=")
			return fmt.Errorf("client: identity %s payload line %d (%s) differs from the structured fields", version, i, name)
		}
	}
	return fmt.Errorf("client: identity %s payload has lines beyond the last field", version)
}

// identityV1Payload is the canonical version 1 payload of id's fields.
func identityV1Payload(id *pb.MerchantIdentity) []byte {
	return encodePayload(identityV1Header, v1Escaper, [][2]string{
		{"merchant_id", id.GetMerchantId()},
		{"legal_name", id.GetLegalName()},
		{"display_name", id.GetDisplayName()},
		{"mcc", id.GetMcc()},
		{"store_id", id.GetStoreId()},
		{"store_name", id.GetStoreName()},
		{"terminal_id", id.GetTerminalId()},
		{"identity_version", strconv.FormatUint(id.GetIdentityVersion(), 10)},
		{"issue_time", issueTime(id)},
		{"key_id", id.GetKeyId()},
	})
}

// identityV2Payload is the canonical version 2 payload of id's fields.
func identityV2Payload(id *pb.MerchantIdentity) []byte {
	a := id.GetAddress()
	return encodePayload(identityV2Header, v2Escaper, [][2]string{
		{"merchant_id", id.GetMerchantId()},
		{"legal_name", id.GetLegalName()},
		{"display_name", id.GetDisplayName()},
		{"mcc", id.GetMcc()},
		{"currency", id.GetCurrency()},
		{"store_id", id.GetStoreId()},
		{"store_name", id.GetStoreName()},
		{"address_line1", a.GetLine1()},
		{"address_line2", a.GetLine2()},
		{"address_city", a.GetCity()},
		{"address_region", a.GetRegion()},
		{"address_postal_code", a.GetPostalCode()},
		{"address_country", a.GetCountry()},
		{"terminal_id", id.GetTerminalId()},
		{"identity_version", strconv.FormatUint(id.GetIdentityVersion(), 10)},
		{"issue_time", issueTime(id)},
		{"key_id", id.GetKeyId()},
	})
}

var (
	v1Escaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	v2Escaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, "\r", `\r`)
)

func encodePayload(header string, esc *strings.Replacer, fields [][2]string) []byte {
	var b strings.Builder
	b.WriteString(header + "\n")
	for _, f := range fields {
		b.WriteString(f[0] + "=" + esc.Replace(f[1]) + "\n")
	}
	return []byte(b.String())
}

// issueTime is the payload form of id's issue_time: RFC 3339 UTC, whole
// seconds (truncated).
func issueTime(id *pb.MerchantIdentity) string {
	if t := id.GetIssueTime(); t != nil {
		return t.AsTime().UTC().Truncate(time.Second).Format(time.RFC3339)
	}
	return ""
}

// TrustedSigningKeys returns the keys of a GetSigningKeys answer that a
// terminal which pinned the key with fingerprint pinned may trust: that key,
// and every key endorsed by a trusted key (SigningKey.endorsement), so that
// trust carries across the server's key rotations. It fails when the pinned
// key is not in the set.
func TrustedSigningKeys(pinned string, keys []*pb.SigningKey) ([]ed25519.PublicKey, error) {
	pinned = strings.ToLower(strings.TrimSpace(pinned))
	trusted := map[string]ed25519.PublicKey{}
	for _, k := range keys {
		if len(k.GetPublicKey()) == ed25519.PublicKeySize && Fingerprint(k.GetPublicKey()) == pinned {
			trusted[k.GetKeyId()] = k.GetPublicKey()
		}
	}
	if len(trusted) == 0 {
		return nil, errors.New("client: the pinned signing key is not in the server's key set")
	}
	// Follow endorsements until no new key is trusted.
	for grew := true; grew; {
		grew = false
		for _, k := range keys {
			pub := ed25519.PublicKey(k.GetPublicKey())
			by, ok := trusted[k.GetEndorsedByKeyId()]
			if _, done := trusted[k.GetKeyId()]; done || !ok || len(pub) != ed25519.PublicKeySize || Fingerprint(pub)[:16] != k.GetKeyId() {
				continue
			}
			if ed25519.Verify(by, EndorsementPayload(k), k.GetEndorsement()) {
				trusted[k.GetKeyId()] = pub
				grew = true
			}
		}
	}
	out := make([]ed25519.PublicKey, 0, len(trusted))
	for _, k := range keys {
		if pub, ok := trusted[k.GetKeyId()]; ok {
			out = append(out, pub)
		}
	}
	return out, nil
}

// EndorsementPayload returns the bytes SigningKey.endorsement signs for k.
func EndorsementPayload(k *pb.SigningKey) []byte {
	created := ""
	if t := k.GetCreateTime(); t != nil {
		created = t.AsTime().UTC().Truncate(time.Second).Format(time.RFC3339)
	}
	return []byte(endorsementHeader + "\nkey_id=" + k.GetKeyId() + "\npublic_key=" + hex.EncodeToString(k.GetPublicKey()) +
		"\ncreate_time=" + created + "\n")
}

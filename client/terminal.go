package client

import (
	"bytes"
	"context"
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

// Register is a terminal's first contact: it exchanges the serial number and
// the enrollment code from ProvisionTerminal for the terminal's credential
// (resp.Credential, shown only once), its signed merchant identity and its
// effective config. Dial a new client WithBearer(resp.Credential) for the
// terminal's other calls. When the response is lost, call Register again
// with the same code: it stays usable until the credential is first used.
func (c *Client) Register(ctx context.Context, serial, enrollmentCode string, device *pb.DeviceInfo) (*pb.RegisterResponse, error) {
	return c.Terminal().Register(ctx, &pb.RegisterRequest{SerialNumber: serial, EnrollmentCode: enrollmentCode, Device: device})
}

// Heartbeat reports the terminal's status and any faults since the last
// heartbeat (at most 32). The response says when to call next, which config
// version to run, the identity version, and pending remote commands.
func (c *Client) Heartbeat(ctx context.Context, status *pb.TerminalStatus, faults ...*pb.Fault) (*pb.HeartbeatResponse, error) {
	return c.Terminal().Heartbeat(ctx, &pb.HeartbeatRequest{Status: status, Faults: faults})
}

// VerifyMerchant returns the terminal's signed merchant identity and, when
// claimedMerchantID is not empty, whether the claim matches the binding (a
// mismatch is recorded by the server as an alert). Check the identity with
// VerifyIdentity.
func (c *Client) VerifyMerchant(ctx context.Context, claimedMerchantID string) (*pb.VerifyMerchantResponse, error) {
	return c.Terminal().VerifyMerchant(ctx, &pb.VerifyMerchantRequest{ClaimedMerchantId: claimedMerchantID})
}

// RotateCredential asks for a new credential. The current one keeps working
// until the new one is first used, so when the response is lost, call
// RotateCredential again with the current one. The client keeps sending the
// credential it was dialed with: store the new credential, dial a new client
// WithBearer(newCredential) and make a call with it to finish the rotation.
func (c *Client) RotateCredential(ctx context.Context) (string, error) {
	resp, err := c.Terminal().RotateCredential(ctx, &pb.RotateCredentialRequest{})
	if err != nil {
		return "", err
	}
	return resp.GetCredential(), nil
}

// AckCommand reports the result of a remote command: succeeded or not, with
// an optional detail (up to 256 characters). Repeating the same
// acknowledgement is safe.
func (c *Client) AckCommand(ctx context.Context, commandID string, succeeded bool, detail string) error {
	result := pb.CommandResult_COMMAND_RESULT_FAILED
	if succeeded {
		result = pb.CommandResult_COMMAND_RESULT_SUCCEEDED
	}
	_, err := c.Terminal().AckCommand(ctx, &pb.AckCommandRequest{CommandId: commandID, Result: result, Detail: detail})
	return err
}

// VerifyIdentity checks a signed merchant identity as documented on
// MerchantIdentity: the key ID names the public key, the Ed25519 signature
// of signed_payload is valid, and every structured field equals the
// payload's line. With trusted keys given, the identity's public key must be
// one of them (pin the server's keys to detect a forged server).
func VerifyIdentity(id *pb.MerchantIdentity, trusted ...ed25519.PublicKey) error {
	pub := ed25519.PublicKey(id.GetPublicKey())
	if len(pub) != ed25519.PublicKeySize {
		return errors.New("client: identity public key missing or malformed")
	}
	sum := sha256.Sum256(pub)
	if hex.EncodeToString(sum[:])[:16] != id.GetKeyId() {
		return errors.New("client: identity key_id does not name its public key")
	}
	if len(trusted) > 0 {
		ok := false
		for _, k := range trusted {
			ok = ok || bytes.Equal(k, pub)
		}
		if !ok {
			return errors.New("client: identity signed by an untrusted key")
		}
	}
	if !ed25519.Verify(pub, id.GetSignedPayload(), id.GetSignature()) {
		return errors.New("client: identity signature invalid")
	}
	lines := strings.Split(string(id.GetSignedPayload()), "\n")
	if len(lines) != 12 || lines[0] != "posfleet-identity-v1" || lines[11] != "" {
		return errors.New("client: identity payload malformed")
	}
	issue := ""
	if t := id.GetIssueTime(); t != nil {
		issue = t.AsTime().UTC().Truncate(time.Second).Format(time.RFC3339)
	}
	want := []struct{ name, value string }{
		{"merchant_id", id.GetMerchantId()},
		{"legal_name", id.GetLegalName()},
		{"display_name", id.GetDisplayName()},
		{"mcc", id.GetMcc()},
		{"store_id", id.GetStoreId()},
		{"store_name", id.GetStoreName()},
		{"terminal_id", id.GetTerminalId()},
		{"identity_version", strconv.FormatUint(id.GetIdentityVersion(), 10)},
		{"issue_time", issue},
		{"key_id", id.GetKeyId()},
	}
	for i, w := range want {
		name, value, ok := strings.Cut(lines[i+1], "=")
		if !ok || name != w.name {
			return fmt.Errorf("client: identity payload line %d is not %s", i+1, w.name)
		}
		if unescape(value) != w.value {
			return fmt.Errorf("client: identity field %s differs from the signed payload", w.name)
		}
	}
	return nil
}

// unescape reverses the payload escaping ("\\\\" → '\\', "\\n" → newline).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			switch s[i+1] {
			case '\\':
				b.WriteByte('\\')
				i++
				continue
			case 'n':
				b.WriteByte('\n')
				i++
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

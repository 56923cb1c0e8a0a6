package client

import (
	"context"

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
// VerifyIdentityV2 against the keys TrustedSigningKeys finds from the
// pinned fingerprint.
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

// GetSigningKeys returns the server's identity signing keys, the active one
// first. Trust only the ones TrustedSigningKeys derives from the fingerprint
// the terminal pinned.
func (c *Client) GetSigningKeys(ctx context.Context) ([]*pb.SigningKey, error) {
	resp, err := c.Terminal().GetSigningKeys(ctx, &pb.GetSigningKeysRequest{})
	return resp.GetKeys(), err
}

package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// Credential rotation on the server's request: an operator (or the fleet)
// queues a COMMAND_TYPE_ROTATE_CREDENTIAL command; the terminal rotates,
// stores the new credential, switches to it and acknowledges the command
// with it. ConfigWatch.SaveCredential has the config watch do all of it
// for the commands pushed on its stream; RotateForCommand does it for a
// command that came in a Heartbeat answer.

// rotateAttempts bounds the RotateCredential calls of one rotation.
const rotateAttempts = 5

// errNoBearer is RotateAndSwitch's error for a client without a credential.
var errNoBearer = errors.New("client: no credential to rotate (dial WithBearer)")

// RotateAndSwitch rotates the terminal's credential and makes the client
// send the new one from then on. It calls RotateCredential with the
// current credential, repeating it with the same credential when the
// answer is lost (Unavailable, DeadlineExceeded, or ResourceExhausted
// after its RetryInfo; at most 5 tries, as the protocol allows: the
// current credential keeps working until the new one is first used), then
// hands the new credential to save, which must store it durably, and only
// then switches. When save fails, the client keeps the current
// credential, which stays valid, and the error is returned.
//
// The next call the client makes is the new credential's first use: it
// revokes the old one, and WatchConfig streams opened with the old one
// end with Unauthenticated (ConfigWatch reopens its stream with the new
// credential by itself). Calls in flight when the switch happens carry
// the old credential.
func (c *Client) RotateAndSwitch(ctx context.Context, save func(ctx context.Context, credential string) error) error {
	if c.currentBearer() == "" {
		return errNoBearer
	}
	if save == nil {
		return errors.New("client: RotateAndSwitch needs a save function: a credential kept only in memory is lost with the terminal's next restart")
	}
	var cred string
	var err error
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		cred, err = c.RotateCredential(ctx)
		if err == nil {
			break
		}
		code := status.Code(err)
		if attempt == rotateAttempts || ctx.Err() != nil ||
			(code != codes.Unavailable && code != codes.DeadlineExceeded && code != codes.ResourceExhausted) {
			return err
		}
		wait := max(time.Duration(rand.Int64N(int64(backoff))+1), RetryDelay(err))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff *= 2
	}
	if err := save(ctx, cred); err != nil {
		return fmt.Errorf("client: store the new credential: %w", err)
	}
	c.bearer.Store(&cred)
	return nil
}

// RotateForCommand carries out a COMMAND_TYPE_ROTATE_CREDENTIAL command
// and acknowledges it: RotateAndSwitch with save, then AckCommand
// SUCCEEDED with the new credential (its first use), or FAILED with the
// error as detail, with the current credential, when the rotation failed.
// It returns the rotation's error, or the acknowledgement's. A command
// already carried out (a repeat delivery) must not be passed again.
func (c *Client) RotateForCommand(ctx context.Context, cmd *pb.RemoteCommand, save func(ctx context.Context, credential string) error) error {
	if cmd.GetType() != pb.CommandType_COMMAND_TYPE_ROTATE_CREDENTIAL {
		return fmt.Errorf("client: command %s is %s, not a credential rotation", cmd.GetCommandId(), cmd.GetType())
	}
	rotErr := c.RotateAndSwitch(ctx, save)
	detail := "credential rotated"
	if rotErr != nil {
		detail = truncateRunes(rotErr.Error(), maxAckDetail)
	}
	if err := c.AckCommand(ctx, cmd.GetCommandId(), rotErr == nil, detail); err != nil {
		return errors.Join(rotErr, err)
	}
	return rotErr
}

// rotationOutcome is what became of one rotation command in a watch.
type rotationOutcome struct {
	succeeded bool
	detail    string
	// acked says the server took the acknowledgement.
	acked bool
}

// rotateFor carries out the rotation commands among cmds that the watch
// has not carried out yet, and acknowledges them; a command whose
// acknowledgement did not go through is acknowledged again, not carried
// out again. It returns the other commands, and whether the client
// switched to a new credential. st.callbacks is held.
func (c *Client) rotateFor(ctx context.Context, w *ConfigWatch, st *watchState, cmds []*pb.RemoteCommand) (rest []*pb.RemoteCommand, switched bool) {
	for _, cmd := range cmds {
		if cmd.GetType() != pb.CommandType_COMMAND_TYPE_ROTATE_CREDENTIAL {
			rest = append(rest, cmd)
			continue
		}
		id := cmd.GetCommandId()
		out := st.rotations[id]
		if out == nil {
			out = &rotationOutcome{succeeded: true, detail: "credential rotated"}
			if err := c.RotateAndSwitch(ctx, w.SaveCredential); err != nil {
				out.succeeded, out.detail = false, truncateRunes(err.Error(), maxAckDetail)
				if w.OnError != nil {
					w.OnError(err, 0)
				}
			} else {
				switched = true
			}
			if st.rotations == nil {
				st.rotations = map[string]*rotationOutcome{}
			}
			st.rotations[id] = out
		}
		if out.acked {
			continue
		}
		if err := c.AckCommand(ctx, id, out.succeeded, out.detail); err != nil {
			// Sent again when the command comes again (each new stream
			// and heartbeat answer repeats it until acknowledged).
			if w.OnError != nil {
				w.OnError(err, 0)
			}
			continue
		}
		out.acked = true
	}
	return rest, switched
}

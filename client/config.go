package client

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// ConfigWatch configures Client.WatchConfig.
type ConfigWatch struct {
	// KnownVersion is the config version the terminal already runs (0 if
	// none); the server sends only newer ones.
	KnownVersion uint64
	// Apply applies one pushed config (a full snapshot of the effective
	// settings). Returning nil acknowledges the version as APPLIED; an
	// error acknowledges it as REJECTED with the error's text as detail.
	// Settings that break the protocol's rules (see CheckSettings) are
	// acknowledged REJECTED without calling Apply: the terminal keeps
	// running what it had. Required.
	Apply func(ctx context.Context, cfg *pb.WatchConfigResponse) error
	// Commands, when set, receives the remote commands pushed on the
	// stream. Acknowledge them with AckCommand.
	Commands func(ctx context.Context, cmds []*pb.RemoteCommand)
	// SaveCredential, when set, has the watch carry out the
	// COMMAND_TYPE_ROTATE_CREDENTIAL commands pushed on the stream, once
	// per command ID, as RotateForCommand does: rotate, hand the new
	// credential to SaveCredential, which must store it durably, switch
	// the client to it and acknowledge the command with it. The stream is
	// then reopened with the new credential, from the last version
	// received. Those commands are not passed to Commands. When nil, they
	// are passed to Commands like any other.
	SaveCredential func(ctx context.Context, credential string) error
	// MinBackoff and MaxBackoff bound the delay before reconnecting a
	// broken stream (defaults 500ms and 30s). The delay doubles after each
	// failure, with full jitter, and starts over once a stream delivers; a
	// RetryInfo delay in the stream's final status, when longer, wins.
	// They pace the resending of an acknowledgement the server could not
	// take the same way.
	MinBackoff, MaxBackoff time.Duration
	// OnError, when set, is told about each broken stream and failed
	// acknowledgement; retryIn is the reconnect delay (0 for acks).
	OnError func(err error, retryIn time.Duration)
}

// maxAckDetail is the protocol's limit on AckConfig.detail.
const maxAckDetail = 256

// WatchConfig keeps a WatchConfig stream open for the calling terminal
// (the client must carry its credential), applies each new config with
// w.Apply and acknowledges it. A broken stream is reopened with backoff,
// resuming from the last version received, so no version is missed and
// none is applied twice. An acknowledgement the server could not take is
// kept and sent again after each reconnect, and with backoff while the
// stream stays up, until the server takes it, refuses it outright or a
// newer version supersedes it; a rollout waits for every terminal's
// acknowledgement, so one lost to a server restart would stall it. It
// returns the last version received and why it stopped: ctx's error, or a
// status the server will not change its mind about (Unauthenticated,
// PermissionDenied, InvalidArgument, Unimplemented). A stream that ends
// Unauthenticated after the client switched to a rotated credential (see
// SaveCredential and RotateAndSwitch) is reopened with the new one.
func (c *Client) WatchConfig(ctx context.Context, w ConfigWatch) (uint64, error) {
	if w.Apply == nil {
		return w.KnownVersion, errors.New("client: ConfigWatch.Apply is required")
	}
	if w.MinBackoff <= 0 {
		w.MinBackoff = 500 * time.Millisecond
	}
	if w.MaxBackoff < w.MinBackoff {
		w.MaxBackoff = max(30*time.Second, w.MinBackoff)
	}
	st := watchState{last: w.KnownVersion}
	backoff := w.MinBackoff
	for {
		delivered, err := c.watchOnce(ctx, &w, &st)
		if ctx.Err() != nil {
			return st.last, ctx.Err()
		}
		// A stream opened with a credential the client has since switched
		// away from ends (Unauthenticated), or is left, on the switch:
		// reopen it at once with the current one.
		if errors.Is(err, errCredentialSwitched) ||
			(status.Code(err) == codes.Unauthenticated && c.currentBearer() != st.openedWith) {
			backoff = w.MinBackoff
			continue
		}
		switch status.Code(err) {
		case codes.Unauthenticated, codes.PermissionDenied, codes.InvalidArgument, codes.Unimplemented:
			return st.last, err
		}
		if delivered {
			backoff = w.MinBackoff
		}
		// The server's RetryInfo (SHUTTING_DOWN carries one) is the least.
		wait := max(time.Duration(rand.Int64N(int64(backoff))+1), RetryDelay(err))
		if w.OnError != nil {
			w.OnError(err, wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return st.last, ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, w.MaxBackoff)
	}
}

// watchState is what the watch loop carries across reconnects.
type watchState struct {
	// last is the last version received; a reconnect resumes from it.
	last uint64
	// unacked is the acknowledgement of an applied version that the server
	// has not taken yet, or nil. The server will not push that version
	// again (the reconnect resumes from it), so this is its only record.
	// There is at most one: the server counts only an acknowledgement of
	// the terminal's current version and accepts and ignores older ones,
	// so the acknowledgement of a newer version supersedes it.
	unacked *pb.AckConfigRequest
	// callbacks keeps the background resending's calls of OnError from
	// running alongside Commands: the callbacks never run concurrently.
	callbacks sync.Mutex
	// openedWith is the credential the current stream was opened with.
	openedWith string
	// rotations holds the outcome of each credential rotation command
	// carried out, by command ID (see rotateFor).
	rotations map[string]*rotationOutcome
}

// errCredentialSwitched ends a stream after the client switched to a
// rotated credential: it is reopened with the new one.
var errCredentialSwitched = errors.New("client: credential switched; reopen the stream")

// watchOnce runs one stream until it breaks; delivered reports whether it
// carried any message. While it runs, st.unacked is resent in the
// background; st is the caller's again when it returns.
func (c *Client) watchOnce(ctx context.Context, w *ConfigWatch, st *watchState) (delivered bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st.openedWith = c.currentBearer()
	stream, err := c.Terminal().WatchConfig(ctx, &pb.WatchConfigRequest{KnownVersion: st.last})
	if err != nil {
		return false, err
	}
	// The server may be back after an outage: resend a leftover
	// acknowledgement at once.
	stopResend := c.resendAck(ctx, w, st, 0)
	defer func() { stopResend() }()
	for {
		msg, err := stream.Recv()
		if err != nil {
			return delivered, err
		}
		delivered = true
		switched := false
		if len(msg.GetCommands()) > 0 {
			func() {
				st.callbacks.Lock()
				defer st.callbacks.Unlock()
				cmds := msg.GetCommands()
				if w.SaveCredential != nil {
					cmds, switched = c.rotateFor(ctx, w, st, cmds)
				}
				if len(cmds) > 0 && w.Commands != nil {
					w.Commands(ctx, cmds)
				}
			}()
		}
		// Versions on one stream only increase; the first after a
		// reconnect may be lower than ours only if the server lost state,
		// and then the server's config is the one to run.
		if v := msg.GetVersion(); v != 0 && v != st.last {
			st.last = v
			stopResend()
			// This version's acknowledgement supersedes any older one.
			st.unacked = c.applyAndAck(ctx, w, msg)
			stopResend = c.resendAck(ctx, w, st, w.MinBackoff)
		}
		if switched {
			return true, errCredentialSwitched
		}
	}
}

// applyAndAck applies one config and acknowledges it, retrying the
// acknowledgement a few times while the server is unreachable. It returns
// the acknowledgement if the server has not taken it but might later (see
// ackRefused), else nil.
func (c *Client) applyAndAck(ctx context.Context, w *ConfigWatch, msg *pb.WatchConfigResponse) *pb.AckConfigRequest {
	req := &pb.AckConfigRequest{Version: msg.GetVersion(), Result: pb.ConfigApplyResult_CONFIG_APPLY_RESULT_APPLIED}
	err := CheckSettings(msg.GetSettings())
	if err == nil {
		err = w.Apply(ctx, msg)
	}
	if err != nil {
		req.Result = pb.ConfigApplyResult_CONFIG_APPLY_RESULT_REJECTED
		req.Detail = truncateRunes(strings.ToValidUTF8(err.Error(), "?"), maxAckDetail)
	}
	delay := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		_, err := c.Terminal().AckConfig(ctx, req)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return req
		}
		code := status.Code(err)
		if w.OnError != nil {
			w.OnError(err, 0)
		}
		if ackRefused(code) {
			return nil
		}
		if attempt == 4 || (code != codes.Unavailable && code != codes.DeadlineExceeded && code != codes.ResourceExhausted) {
			return req
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return req
		case <-t.C:
		}
		delay *= 2
	}
}

// resendAck resends st.unacked, if any, in the background until the server
// takes or refuses it, clearing st.unacked then. The first attempt comes
// after a jittered wait of up to backoff (at once for 0); the bound then
// doubles up to w.MaxBackoff. The returned function stops the resending
// and waits for it to end; only then may the caller touch st again.
func (c *Client) resendAck(ctx context.Context, w *ConfigWatch, st *watchState, backoff time.Duration) (stop func()) {
	if st.unacked == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if backoff > 0 {
				t := time.NewTimer(time.Duration(rand.Int64N(int64(backoff)) + 1))
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
			}
			backoff = min(max(2*backoff, w.MinBackoff), w.MaxBackoff)
			_, err := c.Terminal().AckConfig(ctx, st.unacked)
			if err == nil {
				st.unacked = nil
				return
			}
			if ctx.Err() != nil {
				// Stopped; the attempt may not have arrived, so keep it
				// (the server takes a repeated acknowledgement in stride).
				return
			}
			if w.OnError != nil {
				st.callbacks.Lock()
				w.OnError(err, 0)
				st.callbacks.Unlock()
			}
			if ackRefused(status.Code(err)) {
				st.unacked = nil
				return
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// ackRefused reports whether the server refused an acknowledgement for
// good, so that sending it again is pointless: the request is invalid
// (InvalidArgument, OutOfRange), the server does not know the terminal
// (NotFound: retired or unknown) or never issued it that version
// (FailedPrecondition, after the server lost state; the next stream brings
// the server's config, whose acknowledgement replaces this one), the
// credential does not allow it (Unauthenticated, PermissionDenied: the
// stream ends with the same), or the server does not implement it. Any
// other failure (Unavailable, DeadlineExceeded, ResourceExhausted,
// Aborted, Internal, Unknown, ...) may pass, so the acknowledgement is
// kept and sent again.
func ackRefused(code codes.Code) bool {
	switch code {
	case codes.InvalidArgument, codes.OutOfRange, codes.NotFound, codes.AlreadyExists, codes.FailedPrecondition,
		codes.Unauthenticated, codes.PermissionDenied, codes.Unimplemented:
		return true
	}
	return false
}

// truncateRunes cuts s to at most n characters without splitting one.
func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i, count := 0, 0
	for i = range s {
		if count == n {
			break
		}
		count++
	}
	return s[:i]
}

package client

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
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
	// Required.
	Apply func(ctx context.Context, cfg *pb.WatchConfigResponse) error
	// Commands, when set, receives the remote commands pushed on the
	// stream. Acknowledge them with AckCommand.
	Commands func(ctx context.Context, cmds []*pb.RemoteCommand)
	// MinBackoff and MaxBackoff bound the delay before reconnecting a
	// broken stream (defaults 500ms and 30s). The delay doubles after each
	// failure, with full jitter, and starts over once a stream delivers.
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
// none is applied twice. It returns the last version received and why it
// stopped: ctx's error, or a status the server will not change its mind
// about (Unauthenticated, PermissionDenied, InvalidArgument,
// Unimplemented).
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
	last := w.KnownVersion
	backoff := w.MinBackoff
	for {
		delivered, err := c.watchOnce(ctx, &w, &last)
		if ctx.Err() != nil {
			return last, ctx.Err()
		}
		switch status.Code(err) {
		case codes.Unauthenticated, codes.PermissionDenied, codes.InvalidArgument, codes.Unimplemented:
			return last, err
		}
		if delivered {
			backoff = w.MinBackoff
		}
		wait := time.Duration(rand.Int64N(int64(backoff)) + 1)
		if w.OnError != nil {
			w.OnError(err, wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return last, ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, w.MaxBackoff)
	}
}

// watchOnce runs one stream until it breaks; delivered reports whether it
// carried any message.
func (c *Client) watchOnce(ctx context.Context, w *ConfigWatch, last *uint64) (delivered bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.Terminal().WatchConfig(ctx, &pb.WatchConfigRequest{KnownVersion: *last})
	if err != nil {
		return false, err
	}
	for {
		msg, err := stream.Recv()
		if err != nil {
			return delivered, err
		}
		delivered = true
		if len(msg.GetCommands()) > 0 && w.Commands != nil {
			w.Commands(ctx, msg.GetCommands())
		}
		// Versions on one stream only increase; the first after a
		// reconnect may be lower than ours only if the server lost state,
		// and then the server's config is the one to run.
		if v := msg.GetVersion(); v != 0 && v != *last {
			*last = v
			c.applyAndAck(ctx, w, msg)
		}
	}
}

// applyAndAck applies one config and acknowledges it, retrying the
// acknowledgement while the server is unreachable.
func (c *Client) applyAndAck(ctx context.Context, w *ConfigWatch, msg *pb.WatchConfigResponse) {
	req := &pb.AckConfigRequest{Version: msg.GetVersion(), Result: pb.ConfigApplyResult_CONFIG_APPLY_RESULT_APPLIED}
	if err := w.Apply(ctx, msg); err != nil {
		req.Result = pb.ConfigApplyResult_CONFIG_APPLY_RESULT_REJECTED
		req.Detail = truncateRunes(strings.ToValidUTF8(err.Error(), "?"), maxAckDetail)
	}
	delay := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		_, err := c.Terminal().AckConfig(ctx, req)
		if err == nil || ctx.Err() != nil {
			return
		}
		code := status.Code(err)
		if w.OnError != nil {
			w.OnError(err, 0)
		}
		if attempt == 4 || (code != codes.Unavailable && code != codes.DeadlineExceeded && code != codes.ResourceExhausted) {
			return
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay *= 2
	}
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

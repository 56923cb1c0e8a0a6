package server

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server/configpush"
	"github.com/posfleet/posfleet/server/fleet"
)

// WatchConfig streams the terminal's config versions and remote commands.
// On connect it sends the effective config at once if known_version is
// behind, together with any pending commands; afterwards every new version
// and every newly queued command. Each config message is a full snapshot,
// so a slow stream skips to the newest version. The stream ends when the
// terminal goes away, when the server shuts down (Unavailable) or when
// the terminal opens more watches than allowed (Aborted, its oldest ends).
// It also ends, before anything more is sent, once the credential it was
// opened with stops working: the terminal is suspended or retired
// (PermissionDenied), or its credential was rotated or replaced by a new
// registration (Unauthenticated).
func (t *terminalService) WatchConfig(req *pb.WatchConfigRequest, stream pb.TerminalService_WatchConfigServer) error {
	ctx := stream.Context()
	p, err := terminalPrincipal(ctx)
	if err != nil {
		return err
	}
	tid := p.TerminalID
	bearer := bearerToken(ctx)
	w, err := t.s.eng.Config.Watch(tid, req.GetKnownVersion())
	if err != nil {
		return t.s.toStatus(ctx, err)
	}
	defer w.Close()
	// Headers tell the terminal the watch is registered: from here on no
	// version is missed.
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	// The interceptor checked the credential, but the terminal may have been
	// suspended since: check again before commands are taken for delivery.
	if err := credentialStillValid(t.s.eng.Fleet, bearer); err != nil {
		return err
	}
	cmds := newCommandFilter()
	pending := cmds.next(t.s.eng.Fleet.PendingCommands(tid))
	for {
		cfg, notified, err := w.Poll()
		if err == nil && cfg == nil && !notified && len(pending) == 0 {
			cfg, notified, err = w.Next(ctx)
		}
		if err != nil {
			return t.s.watchEnd(ctx, err)
		}
		// Checked before commands are taken for delivery, so that none is
		// marked delivered to a stream that may no longer have it.
		if err := credentialStillValid(t.s.eng.Fleet, bearer); err != nil {
			return err
		}
		if notified {
			pending = append(pending, cmds.next(t.s.eng.Fleet.PendingCommands(tid))...)
		}
		if cfg == nil && len(pending) == 0 {
			continue
		}
		msg := &pb.WatchConfigResponse{Commands: commandsToPB(pending)}
		if cfg != nil {
			msg.Version, msg.Settings, msg.RolloutId, msg.PublishTime = cfg.Version, settingsToPB(cfg.Settings), cfg.RolloutID, timestampOrNil(cfg.Published)
		}
		if err := stream.Send(msg); err != nil {
			return err
		}
		pending = nil
	}
}

// credentialStillValid checks the credential a stream was opened with, as
// the authenticator would check it for a new call.
func credentialStillValid(f *fleet.Fleet, bearer string) error {
	_, err := f.Authenticate(bearer)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fleet.ErrTerminalSuspended):
		return statusWithReason(codes.PermissionDenied, reasonSuspended, "terminal is suspended")
	case errors.Is(err, fleet.ErrTerminalRetired):
		return statusWithReason(codes.PermissionDenied, reasonRetired, "terminal is retired")
	}
	return statusWithReason(codes.Unauthenticated, reasonCredentialInvalid, "credential replaced; reconnect with the current one")
}

// watchEnd maps the reason a watch ended to the stream's final status.
func (s *Server) watchEnd(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, configpush.ErrClosed):
		return statusWithReason(codes.Unavailable, pb.ErrorReason_SHUTTING_DOWN, "server is shutting down; reconnect")
	case ctx.Err() != nil:
		return status.FromContextError(ctx.Err()).Err()
	}
	return s.toStatus(ctx, err)
}

// commandFilter remembers the commands sent on one stream so that each is
// sent once per stream; a new stream sends every unfinished command again.
type commandFilter struct{ sent map[string]bool }

func newCommandFilter() *commandFilter { return &commandFilter{sent: map[string]bool{}} }

// next returns the commands of cs not yet sent and marks them sent.
func (f *commandFilter) next(cs []fleet.Command) []fleet.Command {
	var out []fleet.Command
	for _, c := range cs {
		if !f.sent[c.ID] {
			f.sent[c.ID] = true
			out = append(out, c)
		}
	}
	return out
}

// AckConfig records whether the terminal applied a config version.
func (t *terminalService) AckConfig(ctx context.Context, req *pb.AckConfigRequest) (*pb.AckConfigResponse, error) {
	p, err := terminalPrincipal(ctx)
	if err != nil {
		return nil, err
	}
	var v violations
	if req.GetVersion() == 0 {
		v.add("version", "is required")
	}
	v.enum("result", int32(req.GetResult()), pb.ConfigApplyResult_name, false)
	v.optional("detail", req.GetDetail(), configpush.MaxAckDetail)
	if err := v.err(); err != nil {
		return nil, err
	}
	issued, _ := t.s.eng.Config.Effective(p.TerminalID)
	if err := t.s.eng.Config.Ack(ctx, p.TerminalID, req.GetVersion(), configpush.AckResult(req.GetResult()), req.GetDetail()); err != nil {
		return nil, t.s.toStatus(ctx, err)
	}
	if issued != nil && issued.Version == req.GetVersion() && req.GetResult() == pb.ConfigApplyResult_CONFIG_APPLY_RESULT_APPLIED {
		t.s.metrics.configApplied(issued.Published, time.Now())
	}
	return &pb.AckConfigResponse{}, nil
}

package server

import (
	"context"
	"fmt"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server/configpush"
)

// auditFlushed waits until the audit events recorded so far are on disk.
// Config changes are committed by the config engine's own group commit, so
// their events are not in the same transaction; flushing before the answer
// still gives every acknowledged publish or rollout action its event after
// a crash.
func (s *Server) auditFlushed(ctx context.Context) error {
	if err := s.eng.Audit.Flush(ctx); err != nil {
		return s.toStatus(ctx, err)
	}
	return nil
}

// Bounds of PublishConfigRequest.clear_fields.
const (
	maxClearFields   = 64
	maxClearFieldLen = 80
)

// PublishConfig changes a scope's settings layer and starts its rollout,
// or with dry_run shows what it would do.
func (a *adminService) PublishConfig(ctx context.Context, req *pb.PublishConfigRequest) (*pb.PublishConfigResponse, error) {
	var v violations
	scope := scopeFromPB(&v, "scope", req.GetScope())
	settings := settingsFromPB(&v, "settings.", req.GetSettings())
	plan := planFromPB(&v, req.GetRollout())
	v.optional("description", req.GetDescription(), configpush.MaxDescription)
	if len(req.GetClearFields()) > maxClearFields {
		v.add("clear_fields", "must name at most %d fields", maxClearFields)
	}
	for i, f := range req.GetClearFields() {
		v.text(fieldAt("clear_fields", i), f, maxClearFieldLen)
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	preq := configpush.PublishRequest{
		Scope: scope, Settings: settings, Clear: req.GetClearFields(), Replace: req.GetReplace(),
		Plan: plan, Description: req.GetDescription(),
	}
	if req.GetDryRun() {
		p, err := a.s.eng.Config.Preview(ctx, preq)
		if err != nil {
			return nil, a.s.toStatus(ctx, err)
		}
		resp := &pb.PublishConfigResponse{
			DryRun: true, Layer: settingsToPB(p.Layer), Changes: changesToPB(p.Changes),
			TargetedTerminals: p.Targeted, StageTerminalCounts: p.StageCounts, FirstStageTerminalIds: p.FirstStage,
		}
		return resp, nil
	}
	ro, err := a.s.eng.Config.Publish(ctx, preq, actor(ctx))
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
	}
	if err := a.s.auditFlushed(ctx); err != nil {
		return nil, err
	}
	return &pb.PublishConfigResponse{
		Version: ro.Version, RolloutId: ro.ID, Rollout: rolloutToPB(ro),
		Layer: settingsToPB(ro.Settings), Changes: changesToPB(ro.Changes), TargetedTerminals: ro.Targeted,
	}, nil
}

// GetConfigLayer returns a scope's own current layer.
func (a *adminService) GetConfigLayer(ctx context.Context, req *pb.GetConfigLayerRequest) (*pb.GetConfigLayerResponse, error) {
	var v violations
	scope := scopeFromPB(&v, "scope", req.GetScope())
	if err := v.err(); err != nil {
		return nil, err
	}
	ro, ok, err := a.s.eng.Config.Layer(scope)
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
	}
	if !ok {
		return &pb.GetConfigLayerResponse{}, nil
	}
	return &pb.GetConfigLayerResponse{Layer: configVersionToPB(ro)}, nil
}

// ListConfigVersions lists the versions published at a scope, newest first.
func (a *adminService) ListConfigVersions(ctx context.Context, req *pb.ListConfigVersionsRequest) (*pb.ListConfigVersionsResponse, error) {
	var v violations
	scope := scopeFromPB(&v, "scope", req.GetScope())
	n := v.pageSize("page_size", req.GetPageSize())
	v.optional("page_token", req.GetPageToken(), 64)
	if err := v.err(); err != nil {
		return nil, err
	}
	list, next, err := a.s.eng.Config.History(ctx, scope, n, req.GetPageToken())
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
	}
	out := make([]*pb.ConfigVersion, len(list))
	for i, r := range list {
		out[i] = configVersionToPB(r)
	}
	return &pb.ListConfigVersionsResponse{Versions: out, NextPageToken: next}, nil
}

// DiffConfigVersions compares the layers of two published versions.
func (a *adminService) DiffConfigVersions(ctx context.Context, req *pb.DiffConfigVersionsRequest) (*pb.DiffConfigVersionsResponse, error) {
	if req.GetFromVersion() == 0 && req.GetToVersion() == 0 {
		var v violations
		v.add("to_version", "at least one of from_version and to_version is required")
		return nil, v.err()
	}
	from, to, changes, err := a.s.eng.Config.DiffVersions(ctx, req.GetFromVersion(), req.GetToVersion())
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
	}
	resp := &pb.DiffConfigVersionsResponse{Changes: changesToPB(changes)}
	if req.GetFromVersion() != 0 {
		resp.From = configVersionToPB(from)
	}
	if req.GetToVersion() != 0 {
		resp.To = configVersionToPB(to)
	}
	return resp, nil
}

// RollbackConfig publishes an earlier layer of a scope again.
func (a *adminService) RollbackConfig(ctx context.Context, req *pb.RollbackConfigRequest) (*pb.RollbackConfigResponse, error) {
	var v violations
	scope := scopeFromPB(&v, "scope", req.GetScope())
	plan := planFromPB(&v, req.GetRollout())
	v.optional("description", req.GetDescription(), configpush.MaxDescription)
	if err := v.err(); err != nil {
		return nil, err
	}
	ro, err := a.s.eng.Config.Rollback(ctx, configpush.RollbackRequest{
		Scope: scope, ToVersion: req.GetToVersion(), Plan: plan, Description: req.GetDescription(),
	}, actor(ctx))
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
	}
	if err := a.s.auditFlushed(ctx); err != nil {
		return nil, err
	}
	return &pb.RollbackConfigResponse{Version: ro.Version, Rollout: rolloutToPB(ro), Changes: changesToPB(ro.Changes)}, nil
}

// AdvanceRollout moves a rollout to its next stage now.
func (a *adminService) AdvanceRollout(ctx context.Context, req *pb.AdvanceRolloutRequest) (*pb.AdvanceRolloutResponse, error) {
	var v violations
	v.rolloutID("rollout_id", req.GetRolloutId())
	if err := v.err(); err != nil {
		return nil, err
	}
	ro, err := a.s.eng.Config.Advance(ctx, req.GetRolloutId(), actor(ctx))
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
	}
	if err := a.s.auditFlushed(ctx); err != nil {
		return nil, err
	}
	return &pb.AdvanceRolloutResponse{Rollout: rolloutToPB(ro)}, nil
}

// GetEffectiveConfig returns the config a terminal should run.
func (a *adminService) GetEffectiveConfig(ctx context.Context, req *pb.GetEffectiveConfigRequest) (*pb.GetEffectiveConfigResponse, error) {
	var v violations
	v.terminalID("terminal_id", req.GetTerminalId())
	if err := v.err(); err != nil {
		return nil, err
	}
	cfg, ok := a.s.eng.Config.Effective(req.GetTerminalId())
	if !ok {
		return nil, a.s.toStatus(ctx, fmt.Errorf("%w: %s", configpush.ErrUnknownTerminal, req.GetTerminalId()))
	}
	sources, err := a.s.eng.Config.Sources(req.GetTerminalId())
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
	}
	return &pb.GetEffectiveConfigResponse{Config: effectiveToPB(cfg), Sources: sourcesToPB(sources)}, nil
}

// GetRollout returns one rollout with its progress.
func (a *adminService) GetRollout(ctx context.Context, req *pb.GetRolloutRequest) (*pb.GetRolloutResponse, error) {
	var v violations
	v.rolloutID("rollout_id", req.GetRolloutId())
	if err := v.err(); err != nil {
		return nil, err
	}
	ro, err := a.s.eng.Config.Rollout(req.GetRolloutId())
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
	}
	return &pb.GetRolloutResponse{Rollout: rolloutToPB(ro)}, nil
}

// ListRollouts lists rollouts, newest first.
func (a *adminService) ListRollouts(ctx context.Context, req *pb.ListRolloutsRequest) (*pb.ListRolloutsResponse, error) {
	var v violations
	v.enum("state", int32(req.GetState()), pb.RolloutState_name, true)
	n := v.pageSize("page_size", req.GetPageSize())
	v.optional("page_token", req.GetPageToken(), 64)
	if err := v.err(); err != nil {
		return nil, err
	}
	out, next, err := boundedPage(a.s.cfg.MaxPageBytes, n, func(n int) ([]configpush.Rollout, string, error) {
		return a.s.eng.Config.ListRollouts(ctx, configpush.State(req.GetState()), n, req.GetPageToken())
	}, rolloutToPB)
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
	}
	return &pb.ListRolloutsResponse{Rollouts: out, NextPageToken: next}, nil
}

// PauseRollout stops a rollout from advancing.
func (a *adminService) PauseRollout(ctx context.Context, req *pb.PauseRolloutRequest) (*pb.PauseRolloutResponse, error) {
	var v violations
	v.rolloutID("rollout_id", req.GetRolloutId())
	v.optional("reason", req.GetReason(), configpush.MaxReason)
	if err := v.err(); err != nil {
		return nil, err
	}
	ro, err := a.s.eng.Config.Pause(ctx, req.GetRolloutId(), req.GetReason(), actor(ctx))
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
	}
	if err := a.s.auditFlushed(ctx); err != nil {
		return nil, err
	}
	return &pb.PauseRolloutResponse{Rollout: rolloutToPB(ro)}, nil
}

// ResumeRollout resumes a paused or halted rollout.
func (a *adminService) ResumeRollout(ctx context.Context, req *pb.ResumeRolloutRequest) (*pb.ResumeRolloutResponse, error) {
	var v violations
	v.rolloutID("rollout_id", req.GetRolloutId())
	if err := v.err(); err != nil {
		return nil, err
	}
	ro, err := a.s.eng.Config.Resume(ctx, req.GetRolloutId(), actor(ctx))
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
	}
	if err := a.s.auditFlushed(ctx); err != nil {
		return nil, err
	}
	return &pb.ResumeRolloutResponse{Rollout: rolloutToPB(ro)}, nil
}

// AbortRollout aborts a rollout; its terminals fall back to the previous
// layer under a new version.
func (a *adminService) AbortRollout(ctx context.Context, req *pb.AbortRolloutRequest) (*pb.AbortRolloutResponse, error) {
	var v violations
	v.rolloutID("rollout_id", req.GetRolloutId())
	v.optional("reason", req.GetReason(), configpush.MaxReason)
	if err := v.err(); err != nil {
		return nil, err
	}
	ro, err := a.s.eng.Config.Abort(ctx, req.GetRolloutId(), req.GetReason(), actor(ctx))
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
	}
	if err := a.s.auditFlushed(ctx); err != nil {
		return nil, err
	}
	return &pb.AbortRolloutResponse{Rollout: rolloutToPB(ro)}, nil
}

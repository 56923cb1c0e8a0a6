package server

import (
	"context"
	"fmt"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server/fleet"
	"github.com/posfleet/posfleet/server/operator"
)

// fleetHooks connect the fleet handlers to components built beside the
// fleet. Each is optional: a nil hook means the component is not there and
// the handler answers without it. They are set in New, before serving.
type fleetHooks struct {
	// effectiveConfig returns a terminal's current effective config, sent in
	// the Register response. Nil: version 0 with no settings.
	effectiveConfig func(ctx context.Context, terminalID string) (*pb.EffectiveConfig, error)
	// paymentStats returns the authorizations decided and approved since the
	// server started, for the fleet report. Nil: zero.
	paymentStats func() (authorizations, approvals uint64)
}

// openFleet opens the admin token store (installing the bootstrap token,
// stored only as a hash) and the fleet, and makes them the authenticator.
func (s *Server) openFleet(bootstrapToken string) error {
	ctx := context.Background()
	var err error
	s.tokens, err = operator.Open(ctx, s.db, s.logger.With("component", "operator"), operator.Options{NewSecret: NewSecret, Audit: s.audit})
	if err != nil {
		return fmt.Errorf("server: open admin tokens: %w", err)
	}
	if err := s.tokens.EnsureBootstrap(ctx, bootstrapToken); err != nil {
		return fmt.Errorf("server: install bootstrap admin token: %w", err)
	}
	opts := fleet.DefaultOptions()
	opts.NewSecret = NewSecret
	if s.cfg.FaultRetention > 0 {
		opts.FaultRetention = s.cfg.FaultRetention
	}
	s.fleet, err = fleet.Open(ctx, s.db, s.audit, s.logger.With("component", "fleet"), opts)
	if err != nil {
		return fmt.Errorf("server: open fleet: %w", err)
	}
	s.closers = append(s.closers, s.fleet.Close)
	s.authn = newAuthenticator(s.fleet, s.tokens, s.audit)
	return nil
}

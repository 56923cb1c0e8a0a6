package server

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server/auth"
	"github.com/posfleet/posfleet/server/fleet"
)

// terminalService implements pb.TerminalServiceServer for terminals.
type terminalService struct {
	pb.UnimplementedTerminalServiceServer
	s *Server
}

// terminalPrincipal returns the authenticated terminal of a call.
func terminalPrincipal(ctx context.Context) (auth.Principal, error) {
	p, ok := auth.FromContext(ctx)
	if !ok || p.Kind != auth.KindTerminal {
		return auth.Principal{}, status.Error(codes.Unauthenticated, "terminal credential required")
	}
	return p, nil
}

// Register exchanges a serial number and enrollment code for a credential.
func (t *terminalService) Register(ctx context.Context, req *pb.RegisterRequest) (*pb.RegisterResponse, error) {
	var v violations
	v.serial("serial_number", req.GetSerialNumber())
	v.text("enrollment_code", req.GetEnrollmentCode(), maxCodeLen)
	d := req.GetDevice()
	v.optional("device.model", d.GetModel(), maxDeviceLen)
	v.optional("device.manufacturer", d.GetManufacturer(), maxDeviceLen)
	v.optional("device.firmware_version", d.GetFirmwareVersion(), maxDeviceLen)
	v.optional("device.app_version", d.GetAppVersion(), maxDeviceLen)
	if err := v.err(); err != nil {
		return nil, err
	}
	reg, err := t.s.fleet.Register(ctx, fleet.RegisterRequest{
		Serial: req.GetSerialNumber(),
		Code:   req.GetEnrollmentCode(),
		Device: fleet.Device{Model: d.GetModel(), Manufacturer: d.GetManufacturer(), Firmware: d.GetFirmwareVersion(), App: d.GetAppVersion()},
		Peer:   peerAddr(ctx),
	})
	if err != nil {
		return nil, t.s.fleetStatus(ctx, err)
	}
	id := reg.Terminal.ID
	// Without config push there is no config: version 0 makes the terminal
	// take the first version it is sent.
	cfg := &pb.EffectiveConfig{}
	if h := t.s.hooks.effectiveConfig; h != nil {
		if c, err := h(ctx, id); err != nil {
			// The terminal is registered; it gets its config from WatchConfig.
			t.s.logger.WarnContext(ctx, "effective config for registration unavailable", "terminal_id", id, "err", err)
		} else if c != nil {
			cfg = c
		}
	}
	return &pb.RegisterResponse{
		TerminalId:        id,
		Credential:        reg.Credential,
		Identity:          identityToPB(reg.Identity),
		Config:            cfg,
		HeartbeatInterval: durationpb.New(t.s.fleet.HeartbeatInterval(id)),
		ServerTime:        timestamppb.Now(),
	}, nil
}

// Heartbeat records the terminal's status and faults.
func (t *terminalService) Heartbeat(ctx context.Context, req *pb.HeartbeatRequest) (*pb.HeartbeatResponse, error) {
	p, err := terminalPrincipal(ctx)
	if err != nil {
		return nil, err
	}
	var v violations
	st := req.GetStatus()
	if st == nil {
		st = &pb.TerminalStatus{}
	}
	v.optional("status.firmware_version", st.GetFirmwareVersion(), maxDeviceLen)
	v.optional("status.app_version", st.GetAppVersion(), maxDeviceLen)
	if st.BatteryPercent != nil && st.GetBatteryPercent() > 100 {
		v.add("status.battery_percent", "must be between 0 and 100")
	}
	v.enum("status.paper", int32(st.GetPaper()), pb.PaperStatus_name, true)
	v.enum("status.network", int32(st.GetNetwork()), pb.NetworkType_name, true)
	if st.SignalDbm != nil && (st.GetSignalDbm() > 0 || st.GetSignalDbm() < -200) {
		v.add("status.signal_dbm", "must be between -200 and 0")
	}
	if u := st.GetUptime(); u != nil && (u.CheckValid() != nil || u.AsDuration() < 0) {
		v.add("status.uptime", "must be a non-negative duration")
	}
	if n := len(req.GetFaults()); n > maxFaults {
		v.add("faults", "must hold at most %d faults (got %d)", maxFaults, n)
	}
	now := time.Now().UTC()
	var faults []fleet.Fault
	for i, f := range req.GetFaults() {
		if i == maxFaults {
			break
		}
		field := fieldAt("faults", i)
		if v.required(field+".component", f.GetComponent()) {
			v.match(field+".component", f.GetComponent(), componentFormat, "1-32 printable ASCII characters")
		}
		v.optional(field+".code", f.GetCode(), 32)
		v.optional(field+".message", f.GetMessage(), maxReasonLen)
		v.enum(field+".severity", int32(f.GetSeverity()), pb.FaultSeverity_name, true)
		at := v.timestamp(field+".occur_time", f.GetOccurTime())
		if at.IsZero() {
			at = now
		}
		sev := f.GetSeverity()
		if sev == pb.FaultSeverity_FAULT_SEVERITY_UNSPECIFIED {
			sev = pb.FaultSeverity_FAULT_SEVERITY_ERROR
		}
		faults = append(faults, fleet.Fault{Component: f.GetComponent(), Code: f.GetCode(), Message: f.GetMessage(), Time: at, Severity: fleet.FaultSeverity(sev)})
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	res, err := t.s.fleet.Heartbeat(p.TerminalID, statusFromPB(st), faults)
	if err != nil {
		return nil, t.s.fleetStatus(ctx, err)
	}
	return &pb.HeartbeatResponse{
		ServerTime:      timestamppb.New(res.ServerTime),
		ConfigVersion:   res.ConfigVersion,
		NextHeartbeat:   durationpb.New(res.NextHeartbeat),
		Commands:        commandsToPB(res.Commands),
		IdentityVersion: res.IdentityVersion,
	}, nil
}

// VerifyMerchant returns the signed identity and checks a merchant claim.
func (t *terminalService) VerifyMerchant(ctx context.Context, req *pb.VerifyMerchantRequest) (*pb.VerifyMerchantResponse, error) {
	p, err := terminalPrincipal(ctx)
	if err != nil {
		return nil, err
	}
	claimed := req.GetClaimedMerchantId()
	if claimed != "" {
		var v violations
		v.merchantID("claimed_merchant_id", claimed)
		if err := v.err(); err != nil {
			return nil, err
		}
	}
	id, matches, err := t.s.fleet.VerifyMerchant(ctx, p.TerminalID, claimed, actor(ctx))
	if err != nil {
		return nil, t.s.fleetStatus(ctx, err)
	}
	return &pb.VerifyMerchantResponse{Identity: identityToPB(id), Matches: matches, ClaimChecked: claimed != ""}, nil
}

// RotateCredential replaces the caller's credential.
func (t *terminalService) RotateCredential(ctx context.Context, _ *pb.RotateCredentialRequest) (*pb.RotateCredentialResponse, error) {
	p, err := terminalPrincipal(ctx)
	if err != nil {
		return nil, err
	}
	cred, err := t.s.fleet.RotateCredential(ctx, p.TerminalID, actor(ctx))
	if err != nil {
		return nil, t.s.fleetStatus(ctx, err)
	}
	return &pb.RotateCredentialResponse{Credential: cred}, nil
}

// AckCommand records the result of one of the caller's remote commands.
func (t *terminalService) AckCommand(ctx context.Context, req *pb.AckCommandRequest) (*pb.AckCommandResponse, error) {
	p, err := terminalPrincipal(ctx)
	if err != nil {
		return nil, err
	}
	var v violations
	v.text("command_id", req.GetCommandId(), maxCommandIDLen)
	v.enum("result", int32(req.GetResult()), pb.CommandResult_name, false)
	v.optional("detail", req.GetDetail(), maxReasonLen)
	if err := v.err(); err != nil {
		return nil, err
	}
	ok := req.GetResult() == pb.CommandResult_COMMAND_RESULT_SUCCEEDED
	if err := t.s.fleet.AckCommand(ctx, p.TerminalID, req.GetCommandId(), ok, req.GetDetail(), actor(ctx)); err != nil {
		return nil, t.s.fleetStatus(ctx, err)
	}
	return &pb.AckCommandResponse{}, nil
}

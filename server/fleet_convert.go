package server

import (
	"context"

	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/auth"
	"github.com/posfleet/posfleet/server/fleet"
)

// Conversions between the fleet's domain types and protocol messages.

// actor returns who is calling, for the domain's audit events.
func actor(ctx context.Context) audit.Actor {
	a := audit.Actor{Name: "anonymous", Peer: peerAddr(ctx)}
	if p, ok := auth.FromContext(ctx); ok {
		a.Name = p.Actor()
	}
	return a
}

func addressFromPB(a *pb.Address) fleet.Address {
	return fleet.Address{
		Line1: a.GetLine1(), Line2: a.GetLine2(), City: a.GetCity(), Region: a.GetRegion(),
		PostalCode: a.GetPostalCode(), Country: a.GetCountry(),
	}
}

func addressToPB(a fleet.Address) *pb.Address {
	if a == (fleet.Address{}) {
		return nil
	}
	return &pb.Address{Line1: a.Line1, Line2: a.Line2, City: a.City, Region: a.Region, PostalCode: a.PostalCode, Country: a.Country}
}

func merchantToPB(m fleet.Merchant) *pb.Merchant {
	return &pb.Merchant{
		MerchantId: m.ID, LegalName: m.LegalName, DisplayName: m.DisplayName, Mcc: m.MCC, Currency: m.Currency,
		Address: addressToPB(m.Address), IdentityVersion: m.IdentityVersion,
		CreateTime: timestampOrNil(m.Created), UpdateTime: timestampOrNil(m.Updated), ArchiveTime: timestampOrNil(m.Archived),
		AllowCrossTerminalRefunds: m.CrossTerminalRefunds,
	}
}

func storeToPB(s fleet.Store) *pb.Store {
	return &pb.Store{
		MerchantId: s.MerchantID, StoreId: s.ID, Name: s.Name, Address: addressToPB(s.Address),
		TimeZone: s.TimeZone, CreateTime: timestampOrNil(s.Created), ArchiveTime: timestampOrNil(s.Archived),
	}
}

func deviceToPB(d fleet.Device) *pb.DeviceInfo {
	if d == (fleet.Device{}) {
		return nil
	}
	return &pb.DeviceInfo{Model: d.Model, Manufacturer: d.Manufacturer, FirmwareVersion: d.Firmware, AppVersion: d.App}
}

func statusFromPB(s *pb.TerminalStatus) fleet.Status {
	if s == nil {
		return fleet.Status{}
	}
	st := fleet.Status{
		FirmwareVersion: s.GetFirmwareVersion(), AppVersion: s.GetAppVersion(), ConfigVersion: s.GetConfigVersion(),
		Charging: s.GetCharging(), Paper: fleet.PaperStatus(s.GetPaper()), Network: fleet.NetworkType(s.GetNetwork()),
		Uptime: s.GetUptime().AsDuration(), QueuedOffline: s.GetQueuedOfflineTransactions(),
	}
	if s.BatteryPercent != nil {
		st.HasBattery, st.BatteryPercent = true, s.GetBatteryPercent()
	}
	if s.SignalDbm != nil {
		st.HasSignal, st.SignalDBm = true, s.GetSignalDbm()
	}
	return st
}

func statusToPB(s fleet.Status) *pb.TerminalStatus {
	out := &pb.TerminalStatus{
		FirmwareVersion: s.FirmwareVersion, AppVersion: s.AppVersion, ConfigVersion: s.ConfigVersion,
		Charging: s.Charging, Paper: pb.PaperStatus(s.Paper), Network: pb.NetworkType(s.Network),
		QueuedOfflineTransactions: s.QueuedOffline,
	}
	if s.Uptime > 0 {
		out.Uptime = durationpb.New(s.Uptime)
	}
	if s.HasBattery {
		out.BatteryPercent = &s.BatteryPercent
	}
	if s.HasSignal {
		out.SignalDbm = &s.SignalDBm
	}
	return out
}

func faultToPB(f fleet.Fault) *pb.Fault {
	return &pb.Fault{Component: f.Component, Code: f.Code, Message: f.Message, OccurTime: timestampOrNil(f.Time), Severity: pb.FaultSeverity(f.Severity)}
}

func terminalToPB(t fleet.Terminal) *pb.Terminal {
	out := &pb.Terminal{
		TerminalId: t.ID, SerialNumber: t.Serial, MerchantId: t.MerchantID, StoreId: t.StoreID, Label: t.Label,
		State: pb.TerminalState(t.State), Connectivity: pb.Connectivity(t.Connectivity), Device: deviceToPB(t.Device),
		LastHeartbeatTime: timestampOrNil(t.LastHeartbeat), DesiredConfigVersion: t.DesiredConfigVersion,
		IdentityVersion: t.IdentityVersion, CreateTime: timestampOrNil(t.Created), RegisterTime: timestampOrNil(t.Registered),
		StateReason: t.StateReason, LastSeenTime: timestampOrNil(t.LastSeen),
	}
	if !t.LastHeartbeat.IsZero() {
		out.LastStatus = statusToPB(t.LastStatus)
	}
	for _, f := range t.RecentFaults {
		out.RecentFaults = append(out.RecentFaults, faultToPB(f))
	}
	return out
}

func identityToPB(id fleet.Identity) *pb.MerchantIdentity {
	return &pb.MerchantIdentity{
		MerchantId: id.MerchantID, LegalName: id.LegalName, DisplayName: id.DisplayName, Mcc: id.MCC,
		StoreId: id.StoreID, StoreName: id.StoreName, Address: addressToPB(id.StoreAddress),
		TerminalId: id.TerminalID, IdentityVersion: id.IdentityVersion, IssueTime: timestampOrNil(id.IssueTime),
		KeyId: id.KeyID, Signature: id.Signature, SignedPayload: id.SignedPayload, PublicKey: id.PublicKey,
	}
}

func commandToPB(c fleet.Command) *pb.RemoteCommand {
	return &pb.RemoteCommand{
		CommandId: c.ID, Type: pb.CommandType(c.Type), Parameters: c.Parameters, CreateTime: timestampOrNil(c.Created),
		ExpireTime: timestampOrNil(c.Expires), State: pb.CommandState(c.State), ResultDetail: c.Detail, TerminalId: c.TerminalID,
	}
}

func commandsToPB(cs []fleet.Command) []*pb.RemoteCommand {
	out := make([]*pb.RemoteCommand, len(cs))
	for i, c := range cs {
		out[i] = commandToPB(c)
	}
	return out
}

func countsToPB(cs []fleet.Count) []*pb.KeyCount {
	out := make([]*pb.KeyCount, len(cs))
	for i, c := range cs {
		out[i] = &pb.KeyCount{Key: c.Key, Count: c.Count}
	}
	return out
}

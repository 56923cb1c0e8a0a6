package server

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server/audit"
)

// ListAuditEvents lists audit events, newest first.
func (a *adminService) ListAuditEvents(ctx context.Context, req *pb.ListAuditEventsRequest) (*pb.ListAuditEventsResponse, error) {
	var v violations
	v.enum("type", int32(req.GetType()), pb.AuditEventType_name, true)
	if req.GetTerminalId() != "" {
		v.terminalID("terminal_id", req.GetTerminalId())
	}
	if req.GetMerchantId() != "" {
		v.merchantID("merchant_id", req.GetMerchantId())
	}
	start := v.timestamp("start_time", req.GetStartTime())
	end := v.timestamp("end_time", req.GetEndTime())
	if !start.IsZero() && !end.IsZero() && !start.Before(end) {
		v.add("end_time", "must be after start_time")
	}
	n := v.pageSize("page_size", req.GetPageSize())
	v.optional("page_token", req.GetPageToken(), 512)
	if err := v.err(); err != nil {
		return nil, err
	}
	// Read our own writes: events recorded before this call are listed.
	if err := a.s.eng.Audit.Flush(ctx); err != nil {
		return nil, a.s.toStatus(ctx, err)
	}
	filter := audit.Filter{
		Type: audit.Type(req.GetType()), TerminalID: req.GetTerminalId(), MerchantID: req.GetMerchantId(),
		Start: start, End: end,
	}
	var searched time.Time
	evs, next, err := boundedPage(a.s.cfg.MaxPageBytes, n, func(n int) ([]audit.Event, string, error) {
		p, err := a.s.eng.Audit.ListPage(ctx, filter, n, req.GetPageToken())
		searched = p.SearchedFrom
		return p.Events, p.NextPageToken, err
	}, auditEventToPB)
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
	}
	res := &pb.ListAuditEventsResponse{Events: evs, NextPageToken: next}
	if !searched.IsZero() {
		res.SearchedFrom = timestamppb.New(searched)
	}
	return res, nil
}

package server

import (
	"context"
	"errors"
	"regexp"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/webhook"
)

func init() {
	errorTable = append(errorTable,
		errorMapping{webhook.ErrNotFound, codes.NotFound, "WEBHOOK_NOT_FOUND"},
		errorMapping{webhook.ErrDeliveryNotFound, codes.NotFound, "WEBHOOK_DELIVERY_NOT_FOUND"},
		errorMapping{webhook.ErrDeliveryPending, codes.FailedPrecondition, "WEBHOOK_DELIVERY_PENDING"},
		errorMapping{webhook.ErrTooManyEndpoints, codes.ResourceExhausted, "TOO_MANY_WEBHOOKS"},
		errorMapping{webhook.ErrBadPageToken, codes.InvalidArgument, "INVALID_PAGE_TOKEN"},
		errorMapping{webhook.ErrClosed, codes.Unavailable, "SHUTTING_DOWN"},
	)
}

var reWebhookID = regexp.MustCompile(`^we_[a-z]{16}$`)

// openWebhooks starts the webhook deliveries, which follow the audit trail,
// and lets a low disk be reported through them.
func (s *Server) openWebhooks() error {
	var err error
	s.webhooks, err = webhook.Open(context.Background(), s.db, s.audit, s.logger.With("component", "webhooks"), s.cfg.Webhooks)
	if err != nil {
		return err
	}
	s.closers = append(s.closers, s.webhooks.Close)
	s.diskAudit.Store(s.audit)
	if s.space != nil && s.space.Status().Low {
		s.noteDiskLow(true)
	}
	return s.watchOffline()
}

// offlineSweepEvery is how often terminals are checked for going offline
// (TERMINAL_OFFLINE, the terminal_offline webhook).
const offlineSweepEvery = 15 * time.Second

// watchOffline sweeps the fleet for terminals gone offline until Close.
func (s *Server) watchOffline() error {
	det, err := s.fleet.NewOfflineDetector()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(offlineSweepEvery)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			n, err := det.Sweep(ctx)
			switch {
			case err != nil && ctx.Err() == nil:
				s.logger.Warn("offline sweep failed", "err", err, "reported", n)
			case n > 0:
				s.logger.Info("terminals went offline", "count", n)
			}
		}
	}()
	s.closers = append(s.closers, func() error { cancel(); <-done; return nil })
	return nil
}

// noteDiskLow records a DISK_LOW audit event (and so a disk_low webhook)
// when free space falls below the reserve. The event goes through the
// reserve like every audit batch.
func (s *Server) noteDiskLow(low bool) {
	log := s.diskAudit.Load()
	if !low || log == nil {
		return
	}
	st := s.space.Status()
	log.Record(audit.Event{Type: audit.DiskLow, Actor: "system",
		Message: "free disk space below the reserve; writes are refused until it returns",
		Attributes: map[string]string{
			"free_bytes": strconv.FormatInt(st.FreeBytes, 10), "reserve_bytes": strconv.FormatInt(st.ReserveBytes, 10),
		}})
}

// webhookStatus converts a webhook error into a status: validation errors
// become InvalidArgument with a BadRequest, the rest go through the table.
func (s *Server) webhookStatus(ctx context.Context, err error) error {
	if ve, ok := errors.AsType[*webhook.ValidationError](err); ok {
		return fieldViolations(ve.Violations)
	}
	return toStatus(ctx, s.logger, err)
}

// fieldViolations turns a domain's list of invalid fields (each domain has
// its own Violation type of this shape) into InvalidArgument with a
// BadRequest.
func fieldViolations[V ~struct{ Field, Reason string }](vs []V) error {
	var v violations
	for _, x := range vs {
		f := struct{ Field, Reason string }(x)
		v.add(f.Field, "%s", f.Reason)
	}
	return v.err()
}

func webhookActor(ctx context.Context) webhook.Actor {
	a := actor(ctx)
	return webhook.Actor{Name: a.Name, Peer: a.Peer}
}

// checkWebhookID validates an endpoint ID field.
func checkWebhookID(v *violations, id string) {
	if v.required("endpoint_id", id) {
		v.match("endpoint_id", id, reWebhookID, "an endpoint ID (we_ and 16 letters)")
	}
}

func webhookEvents(names []string) []webhook.Event {
	if names == nil {
		return nil
	}
	evs := make([]webhook.Event, len(names))
	for i, n := range names {
		evs[i] = webhook.Event(n)
	}
	return evs
}

func webhookToPB(ep webhook.Endpoint) *pb.WebhookEndpoint {
	evs := make([]string, len(ep.Events))
	for i, e := range ep.Events {
		evs[i] = string(e)
	}
	st := ep.Status
	return &pb.WebhookEndpoint{
		EndpointId: ep.ID, Url: ep.URL, Events: evs, Description: ep.Description, Disabled: ep.Disabled,
		CreateTime: ts(ep.Created), UpdateTime: ts(ep.Updated), SecretRotateTime: ts(ep.SecretRotated),
		Status: &pb.WebhookEndpointStatus{
			PendingEventId: st.PendingEventID, Delivered: st.Delivered, Failed: st.Failed,
			LastAttemptTime: ts(st.LastAttempt), LastSuccessTime: ts(st.LastSuccess), LastFailureTime: ts(st.LastFailure),
			LastError: st.LastError, LastStatusCode: int32(st.LastStatusCode), ConsecutiveFailures: st.ConsecutiveFailures,
		},
	}
}

func webhookDeliveryToPB(d webhook.Delivery) *pb.WebhookDelivery {
	return &pb.WebhookDelivery{
		EndpointId: d.EndpointID, EventId: d.EventID, Event: string(d.Event),
		Status: pb.WebhookDeliveryStatus(d.Status), Attempts: d.Attempts, Redeliveries: d.Redeliveries,
		CreateTime: ts(d.Created), LastAttemptTime: ts(d.LastAttempt), NextAttemptTime: ts(d.NextAttempt),
		FinishTime: ts(d.Finished), LastError: d.LastError, LastStatusCode: int32(d.LastStatusCode),
	}
}

// CreateWebhook creates a webhook endpoint and returns its secret once.
func (a *adminService) CreateWebhook(ctx context.Context, req *pb.CreateWebhookRequest) (*pb.CreateWebhookResponse, error) {
	ep, secret, err := a.s.webhooks.Create(ctx, webhook.Spec{
		URL: req.GetUrl(), Events: webhookEvents(req.GetEvents()), Description: req.GetDescription(),
	}, webhookActor(ctx))
	if err != nil {
		return nil, a.s.webhookStatus(ctx, err)
	}
	return &pb.CreateWebhookResponse{Endpoint: webhookToPB(ep), Secret: secret}, nil
}

// GetWebhook returns an endpoint with its status.
func (a *adminService) GetWebhook(ctx context.Context, req *pb.GetWebhookRequest) (*pb.GetWebhookResponse, error) {
	var v violations
	checkWebhookID(&v, req.GetEndpointId())
	if err := v.err(); err != nil {
		return nil, err
	}
	ep, err := a.s.webhooks.Get(ctx, req.GetEndpointId())
	if err != nil {
		return nil, a.s.webhookStatus(ctx, err)
	}
	return &pb.GetWebhookResponse{Endpoint: webhookToPB(ep)}, nil
}

// ListWebhooks lists every endpoint.
func (a *adminService) ListWebhooks(ctx context.Context, _ *pb.ListWebhooksRequest) (*pb.ListWebhooksResponse, error) {
	return &pb.ListWebhooksResponse{Endpoints: convertAll(a.s.webhooks.List(ctx), webhookToPB)}, nil
}

// UpdateWebhook changes an endpoint.
func (a *adminService) UpdateWebhook(ctx context.Context, req *pb.UpdateWebhookRequest) (*pb.UpdateWebhookResponse, error) {
	var v violations
	checkWebhookID(&v, req.GetEndpointId())
	if err := v.err(); err != nil {
		return nil, err
	}
	p := webhook.Patch{URL: req.Url, Description: req.Description, Disabled: req.Disabled}
	if len(req.GetEvents()) > 0 {
		p.Events = webhookEvents(req.GetEvents())
	}
	ep, err := a.s.webhooks.Update(ctx, req.GetEndpointId(), p, webhookActor(ctx))
	if err != nil {
		return nil, a.s.webhookStatus(ctx, err)
	}
	return &pb.UpdateWebhookResponse{Endpoint: webhookToPB(ep)}, nil
}

// DeleteWebhook deletes an endpoint.
func (a *adminService) DeleteWebhook(ctx context.Context, req *pb.DeleteWebhookRequest) (*pb.DeleteWebhookResponse, error) {
	var v violations
	checkWebhookID(&v, req.GetEndpointId())
	if err := v.err(); err != nil {
		return nil, err
	}
	if err := a.s.webhooks.Delete(ctx, req.GetEndpointId(), webhookActor(ctx)); err != nil {
		return nil, a.s.webhookStatus(ctx, err)
	}
	return &pb.DeleteWebhookResponse{}, nil
}

// RotateWebhookSecret replaces an endpoint's secret and returns it once.
func (a *adminService) RotateWebhookSecret(ctx context.Context, req *pb.RotateWebhookSecretRequest) (*pb.RotateWebhookSecretResponse, error) {
	var v violations
	checkWebhookID(&v, req.GetEndpointId())
	if err := v.err(); err != nil {
		return nil, err
	}
	ep, secret, err := a.s.webhooks.RotateSecret(ctx, req.GetEndpointId(), webhookActor(ctx))
	if err != nil {
		return nil, a.s.webhookStatus(ctx, err)
	}
	return &pb.RotateWebhookSecretResponse{Endpoint: webhookToPB(ep), Secret: secret}, nil
}

// RedeliverWebhookEvent queues an event for another delivery.
func (a *adminService) RedeliverWebhookEvent(ctx context.Context, req *pb.RedeliverWebhookEventRequest) (*pb.RedeliverWebhookEventResponse, error) {
	var v violations
	checkWebhookID(&v, req.GetEndpointId())
	if v.required("event_id", req.GetEventId()) {
		v.maxLen("event_id", req.GetEventId(), 32)
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	d, err := a.s.webhooks.Redeliver(ctx, req.GetEndpointId(), req.GetEventId(), webhookActor(ctx))
	if err != nil {
		return nil, a.s.webhookStatus(ctx, err)
	}
	return &pb.RedeliverWebhookEventResponse{Delivery: webhookDeliveryToPB(d)}, nil
}

// ListWebhookDeliveries lists an endpoint's deliveries, newest first.
func (a *adminService) ListWebhookDeliveries(ctx context.Context, req *pb.ListWebhookDeliveriesRequest) (*pb.ListWebhookDeliveriesResponse, error) {
	var v violations
	checkWebhookID(&v, req.GetEndpointId())
	n := v.pageSize("page_size", req.GetPageSize())
	v.optional("page_token", req.GetPageToken(), 64)
	st := req.GetStatus()
	if _, ok := pb.WebhookDeliveryStatus_name[int32(st)]; !ok {
		v.add("status", "unknown status %d", st)
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	out, next, err := boundedPage(a.s.cfg.MaxPageBytes, n, func(n int) ([]webhook.Delivery, string, error) {
		return a.s.webhooks.ListDeliveries(ctx, req.GetEndpointId(), webhook.DeliveryStatus(st), n, req.GetPageToken())
	}, webhookDeliveryToPB)
	if err != nil {
		return nil, a.s.webhookStatus(ctx, err)
	}
	return &pb.ListWebhookDeliveriesResponse{Deliveries: out, NextPageToken: next}, nil
}

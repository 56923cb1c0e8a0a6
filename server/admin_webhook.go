package server

import (
	"context"
	"regexp"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server/webhook"
)

var reWebhookID = regexp.MustCompile(`^we_[a-z]{16}$`)

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
		CreateTime: timestampOrNil(ep.Created), UpdateTime: timestampOrNil(ep.Updated), SecretRotateTime: timestampOrNil(ep.SecretRotated),
		Status: &pb.WebhookEndpointStatus{
			PendingEventId: st.PendingEventID, Delivered: st.Delivered, Failed: st.Failed,
			LastAttemptTime: timestampOrNil(st.LastAttempt), LastSuccessTime: timestampOrNil(st.LastSuccess), LastFailureTime: timestampOrNil(st.LastFailure),
			LastError: st.LastError, LastStatusCode: int32(st.LastStatusCode), ConsecutiveFailures: st.ConsecutiveFailures,
		},
	}
}

func webhookDeliveryToPB(d webhook.Delivery) *pb.WebhookDelivery {
	return &pb.WebhookDelivery{
		EndpointId: d.EndpointID, EventId: d.EventID, Event: string(d.Event),
		Status: pb.WebhookDeliveryStatus(d.Status), Attempts: d.Attempts, Redeliveries: d.Redeliveries,
		CreateTime: timestampOrNil(d.Created), LastAttemptTime: timestampOrNil(d.LastAttempt), NextAttemptTime: timestampOrNil(d.NextAttempt),
		FinishTime: timestampOrNil(d.Finished), LastError: d.LastError, LastStatusCode: int32(d.LastStatusCode),
	}
}

// CreateWebhook creates a webhook endpoint and returns its secret once.
func (a *adminService) CreateWebhook(ctx context.Context, req *pb.CreateWebhookRequest) (*pb.CreateWebhookResponse, error) {
	ep, secret, err := a.s.eng.Webhooks.Create(ctx, webhook.Spec{
		URL: req.GetUrl(), Events: webhookEvents(req.GetEvents()), Description: req.GetDescription(),
	}, actor(ctx))
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
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
	ep, err := a.s.eng.Webhooks.Get(ctx, req.GetEndpointId())
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
	}
	return &pb.GetWebhookResponse{Endpoint: webhookToPB(ep)}, nil
}

// ListWebhooks lists every endpoint.
func (a *adminService) ListWebhooks(ctx context.Context, _ *pb.ListWebhooksRequest) (*pb.ListWebhooksResponse, error) {
	return &pb.ListWebhooksResponse{Endpoints: convertAll(a.s.eng.Webhooks.List(ctx), webhookToPB)}, nil
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
	ep, err := a.s.eng.Webhooks.Update(ctx, req.GetEndpointId(), p, actor(ctx))
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
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
	if err := a.s.eng.Webhooks.Delete(ctx, req.GetEndpointId(), actor(ctx)); err != nil {
		return nil, a.s.toStatus(ctx, err)
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
	ep, secret, err := a.s.eng.Webhooks.RotateSecret(ctx, req.GetEndpointId(), actor(ctx))
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
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
	d, err := a.s.eng.Webhooks.Redeliver(ctx, req.GetEndpointId(), req.GetEventId(), actor(ctx))
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
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
		return a.s.eng.Webhooks.ListDeliveries(ctx, req.GetEndpointId(), webhook.DeliveryStatus(st), n, req.GetPageToken())
	}, webhookDeliveryToPB)
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
	}
	return &pb.ListWebhookDeliveriesResponse{Deliveries: out, NextPageToken: next}, nil
}

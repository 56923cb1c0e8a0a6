package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

func init() {
	registerAdmin("webhooks", "create", "create a webhook endpoint (--url URL --events LIST) and print its signing secret once (ADMIN)", webhooksCreate)
	registerAdmin("webhooks", "list", "list webhook endpoints with their delivery status", webhooksList)
	registerAdmin("webhooks", "get", "show one webhook endpoint with its delivery status", webhooksGet)
	registerAdmin("webhooks", "update", "change a webhook endpoint's URL, events, description; --disable / --enable (ADMIN)", webhooksUpdate)
	registerAdmin("webhooks", "delete", "delete a webhook endpoint and its deliveries (ADMIN)", webhooksDelete)
	registerAdmin("webhooks", "rotate-secret", "replace a webhook endpoint's signing secret and print the new one once (ADMIN)", webhooksRotate)
	registerAdmin("webhooks", "redeliver", "send a delivered or failed event to an endpoint again (ADMIN)", webhooksRedeliver)
	registerAdmin("webhooks", "deliveries", "list an endpoint's deliveries, newest first, with attempts and errors", webhooksDeliveries)
}

var webhookHeaders = []string{"ENDPOINT", "URL", "EVENTS", "STATE", "PENDING", "DELIVERED", "FAILED", "LAST ERROR"}

func webhookRow(e *pb.WebhookEndpoint) []string {
	st := e.GetStatus()
	state := "enabled"
	if e.GetDisabled() {
		state = "disabled"
	}
	return []string{e.GetEndpointId(), e.GetUrl(), strings.Join(e.GetEvents(), ","), state, orDash(st.GetPendingEventId()),
		strconv.FormatUint(st.GetDelivered(), 10), strconv.FormatUint(st.GetFailed(), 10), orDash(st.GetLastError())}
}

var deliveryHeaders = []string{"EVENT ID", "EVENT", "STATUS", "ATTEMPTS", "LAST ATTEMPT", "NEXT ATTEMPT", "HTTP", "LAST ERROR"}

func deliveryRow(d *pb.WebhookDelivery) []string {
	code := "-"
	if c := d.GetLastStatusCode(); c != 0 {
		code = strconv.Itoa(int(c))
	}
	return []string{d.GetEventId(), d.GetEvent(), enumName(d.GetStatus().String(), "WEBHOOK_DELIVERY_STATUS_"),
		strconv.FormatUint(uint64(d.GetAttempts()), 10), tsText(d.GetLastAttemptTime()), tsText(d.GetNextAttemptTime()),
		code, orDash(d.GetLastError())}
}

// eventList splits a comma-separated --events value.
func eventList(s string) []string {
	var out []string
	for e := range strings.SplitSeq(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// webhookIDFlags parses a verb that names one endpoint with --id, plus
// the flags extra adds.
func webhookIDFlags(env *adminEnv, verb string, args []string, extra func(fs *flag.FlagSet)) (*flag.FlagSet, string, error) {
	fs := verbFlags(env, "webhooks", verb)
	id := fs.String("id", "", "endpoint ID, we_... (required)")
	if extra != nil {
		extra(fs)
	}
	if err := parseFlags(fs, args); err != nil {
		return nil, "", err
	}
	if err := need(fs, "id"); err != nil {
		return nil, "", err
	}
	return fs, *id, nil
}

// webhookSecretOut prints an endpoint with the secret shown only once:
// the whole response with --json, else a table and the secret below it.
func webhookSecretOut(env *adminEnv, resp proto.Message, ep *pb.WebhookEndpoint, secret string) error {
	if env.JSON {
		return env.print(resp, nil, nil)
	}
	if err := env.print(nil, webhookHeaders, [][]string{webhookRow(ep)}); err != nil {
		return err
	}
	_, err := fmt.Fprintf(env.Out, "\nsigning secret (shown only once): %s\n", safeText(secret))
	return err
}

func webhooksCreate(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "webhooks", "create")
	url := fs.String("url", "", "http or https URL that receives the deliveries (required)")
	events := fs.String("events", "", "comma-separated events (required): "+webhookEventNames)
	desc := fs.String("description", "", "free text for operators")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := need(fs, "url", "events"); err != nil {
		return err
	}
	resp, err := env.Client.Admin().CreateWebhook(ctx, &pb.CreateWebhookRequest{Url: *url, Events: eventList(*events), Description: *desc})
	if err != nil {
		return err
	}
	return webhookSecretOut(env, resp, resp.GetEndpoint(), resp.GetSecret())
}

const webhookEventNames = "merchant_mismatch, rollout_halted, rollout_completed, terminal_offline, batch_out_of_balance, config_rejected, disk_low"

func webhooksRotate(ctx context.Context, env *adminEnv, args []string) error {
	_, id, err := webhookIDFlags(env, "rotate-secret", args, nil)
	if err != nil {
		return err
	}
	resp, err := env.Client.Admin().RotateWebhookSecret(ctx, &pb.RotateWebhookSecretRequest{EndpointId: id})
	if err != nil {
		return err
	}
	return webhookSecretOut(env, resp, resp.GetEndpoint(), resp.GetSecret())
}

func webhooksList(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "webhooks", "list")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	resp, err := env.Client.Admin().ListWebhooks(ctx, &pb.ListWebhooksRequest{})
	if err != nil {
		return err
	}
	rows := make([][]string, len(resp.GetEndpoints()))
	for i, e := range resp.GetEndpoints() {
		rows[i] = webhookRow(e)
	}
	return env.print(resp, webhookHeaders, rows)
}

func webhooksGet(ctx context.Context, env *adminEnv, args []string) error {
	_, id, err := webhookIDFlags(env, "get", args, nil)
	if err != nil {
		return err
	}
	resp, err := env.Client.Admin().GetWebhook(ctx, &pb.GetWebhookRequest{EndpointId: id})
	if err != nil {
		return err
	}
	return env.print(resp, webhookHeaders, [][]string{webhookRow(resp.GetEndpoint())})
}

func webhooksUpdate(ctx context.Context, env *adminEnv, args []string) error {
	var url, events, desc *string
	var disable, enable *bool
	fs, id, err := webhookIDFlags(env, "update", args, func(fs *flag.FlagSet) {
		url = fs.String("url", "", "new URL")
		events = fs.String("events", "", "new comma-separated events, replacing the old list")
		desc = fs.String("description", "", "new description")
		disable = fs.Bool("disable", false, "pause deliveries (events wait, nothing is lost)")
		enable = fs.Bool("enable", false, "resume deliveries")
	})
	if err != nil {
		return err
	}
	if *disable && *enable {
		return fmt.Errorf("--disable and --enable exclude each other")
	}
	req := &pb.UpdateWebhookRequest{EndpointId: id, Events: eventList(*events)}
	if isFlagSet(fs, "url") {
		req.Url = url
	}
	if isFlagSet(fs, "description") {
		req.Description = desc
	}
	switch {
	case *disable:
		req.Disabled = disable
	case *enable:
		req.Disabled = new(bool)
	}
	resp, err := env.Client.Admin().UpdateWebhook(ctx, req)
	if err != nil {
		return err
	}
	return env.print(resp, webhookHeaders, [][]string{webhookRow(resp.GetEndpoint())})
}

func webhooksDelete(ctx context.Context, env *adminEnv, args []string) error {
	_, id, err := webhookIDFlags(env, "delete", args, nil)
	if err != nil {
		return err
	}
	resp, err := env.Client.Admin().DeleteWebhook(ctx, &pb.DeleteWebhookRequest{EndpointId: id})
	if err != nil {
		return err
	}
	if env.JSON {
		return env.print(resp, nil, nil)
	}
	_, err = fmt.Fprintf(env.Out, "deleted %s\n", safeText(id))
	return err
}

func webhooksRedeliver(ctx context.Context, env *adminEnv, args []string) error {
	var event *string
	_, id, err := webhookIDFlags(env, "redeliver", args, func(fs *flag.FlagSet) {
		event = fs.String("event", "", "event ID, evt_... (required)")
	})
	if err != nil {
		return err
	}
	if *event == "" {
		return fmt.Errorf("--event is required")
	}
	resp, err := env.Client.Admin().RedeliverWebhookEvent(ctx, &pb.RedeliverWebhookEventRequest{EndpointId: id, EventId: *event})
	if err != nil {
		return err
	}
	if env.JSON {
		return env.print(resp, nil, nil)
	}
	_, err = fmt.Fprintf(env.Out, "queued %s for another delivery to %s\n", safeText(*event), safeText(id))
	return err
}

func webhooksDeliveries(ctx context.Context, env *adminEnv, args []string) error {
	var status *string
	var limit *int
	_, id, err := webhookIDFlags(env, "deliveries", args, func(fs *flag.FlagSet) {
		status = fs.String("status", "", "only pending, delivered or failed")
		limit = fs.Int("limit", 50, "most deliveries to show")
	})
	if err != nil {
		return err
	}
	st, err := parseEnum("status", *status, "WEBHOOK_DELIVERY_STATUS_", pb.WebhookDeliveryStatus_value)
	if err != nil {
		return err
	}
	resp, err := env.Client.Admin().ListWebhookDeliveries(ctx, &pb.ListWebhookDeliveriesRequest{
		EndpointId: id, Status: pb.WebhookDeliveryStatus(st), PageSize: int32(min(max(*limit, 1), 1000)),
	})
	if err != nil {
		return err
	}
	rows := make([][]string, len(resp.GetDeliveries()))
	for i, d := range resp.GetDeliveries() {
		rows[i] = deliveryRow(d)
	}
	return env.print(resp, deliveryHeaders, rows)
}

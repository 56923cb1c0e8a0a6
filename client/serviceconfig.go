package client

import (
	"encoding/json"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// serviceConfig is the service config Dial uses: the published one
// (pb.ServiceConfigJSON) without the retry policy of the PaymentService
// methods. The payment helpers retry those calls themselves, by the same
// rules plus RetryInfo delays and the reversal of an unknown outcome
// (RetryPolicy); retries of the connection underneath would multiply
// RetryPolicy.Attempts. Deadlines, throttling and the retries of the other
// methods are kept as published.
var serviceConfig = withoutPaymentRetries(pb.ServiceConfigJSON)

func withoutPaymentRetries(published string) string {
	var cfg map[string]any
	if err := json.Unmarshal([]byte(published), &cfg); err != nil {
		return published // Dial reports it
	}
	methods, _ := cfg["methodConfig"].([]any)
	for _, m := range methods {
		mc, _ := m.(map[string]any)
		names, _ := mc["name"].([]any)
		payments := len(names) > 0
		for _, n := range names {
			if name, _ := n.(map[string]any); name["service"] != pb.PaymentService_ServiceDesc.ServiceName {
				payments = false
			}
		}
		if payments {
			delete(mc, "retryPolicy")
		}
	}
	out, err := json.Marshal(cfg)
	if err != nil {
		return published
	}
	return string(out)
}

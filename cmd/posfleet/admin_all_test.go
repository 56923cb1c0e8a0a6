package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// Every admin command runs once against a freshly provisioned terminal
// that never registered nor sent a heartbeat ('terminals get' used to
// panic on it), with --json after the verb where it only reads. A command
// added without a row here fails the test.
func TestEveryAdminCommandOnAFreshTerminal(t *testing.T) {
	cli := StartAdminCLI(t)
	tid, _ := provisionForSim(t, cli, "MIDALL", "SN-ALL-1")
	jsonField := func(out, field string) string {
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("output is not JSON: %v\n%s", err, out)
		}
		for _, part := range strings.Split(field, ".") {
			switch v := m[part].(type) {
			case map[string]any:
				m = v
			case string:
				return v
			}
		}
		t.Fatalf("no %s in %s", field, out)
		return ""
	}
	var tokenID, rolloutID string
	hookURL, hookGot := newWebhookReceiver(t)
	var hookID, hookEvent string
	ran := map[string]bool{"terminals provision": true, "merchants create": true, "stores create": true} // by provisionForSim
	for _, step := range []struct {
		args     func() []string
		readOnly bool
		want     string
		after    func(out string)
	}{
		{args: func() []string { return []string{"merchants", "get", "--id", "MIDALL"} }, readOnly: true, want: "Sim Foods Ltd"},
		{args: func() []string { return []string{"merchants", "list"} }, readOnly: true, want: "MIDALL"},
		{args: func() []string { return []string{"merchants", "update", "--id", "MIDALL", "--display-name", "Sim"} }, want: "v2"},
		{args: func() []string { return []string{"stores", "list", "--merchant", "MIDALL"} }, readOnly: true, want: "s1"},
		{args: func() []string { return []string{"terminals", "get", "--id", tid} }, readOnly: true, want: "NEVER_SEEN"},
		{args: func() []string { return []string{"terminals", "list", "--connectivity", "never-seen"} }, readOnly: true, want: tid},
		{args: func() []string { return []string{"terminals", "reissue", "--id", tid} }, want: tid},
		{args: func() []string { return []string{"terminals", "suspend", "--id", tid, "--reason", "check"} }, want: "SUSPENDED"},
		{args: func() []string { return []string{"terminals", "reactivate", "--id", tid} }, want: "PROVISIONED"},
		{args: func() []string { return []string{"commands", "send", "--terminal", tid, "--type", "reboot"} }, want: "REBOOT"},
		{args: func() []string { return []string{"commands", "list", "--terminal", tid} }, readOnly: true, want: "REBOOT"},
		{args: func() []string { return []string{"config", "publish", "--terminal", tid, "--daily-limit", "100NZD"} }, want: "terminal " + tid},
		{args: func() []string { return []string{"config", "show", "--terminal", tid} }, readOnly: true, want: "100.00 NZD"},
		{args: func() []string {
			return []string{"config", "publish", "--merchant", "MIDALL", "--receipt-header", "hi", "--stages", "50,100", "--json"}
		},
			after: func(out string) { rolloutID = jsonField(out, "rolloutId") }},
		{args: func() []string { return []string{"rollout", "get", "--id", rolloutID} }, readOnly: true, want: "50%, 100%"},
		{args: func() []string { return []string{"rollout", "list"} }, readOnly: true, want: rolloutID},
		{args: func() []string { return []string{"config", "layer", "--merchant", "MIDALL"} }, readOnly: true, want: "receipt_header"},
		{args: func() []string { return []string{"config", "history", "--merchant", "MIDALL"} }, readOnly: true, want: rolloutID},
		{args: func() []string { return []string{"config", "diff", "--from", "1", "--to", "2"} }, readOnly: true, want: "receipt_header"},
		{args: func() []string { return []string{"rollout", "pause", "--id", rolloutID, "--reason", "lunch"} }, want: "PAUSED"},
		{args: func() []string { return []string{"rollout", "resume", "--id", rolloutID} }, want: "RUNNING"},
		{args: func() []string { return []string{"rollout", "abort", "--id", rolloutID, "--reason", "typo"} }, want: "ABORTED"},
		{args: func() []string {
			cli.Must("config", "publish", "--merchant", "MIDALL", "--receipt-footer", "bye")
			return []string{"config", "rollback", "--merchant", "MIDALL", "--stages", "50,100", "--json"}
		},
			after: func(out string) { rolloutID = jsonField(out, "rollout.rolloutId") }},
		{args: func() []string { return []string{"rollout", "advance", "--id", rolloutID} }, want: rolloutID},
		{args: func() []string { return []string{"transactions", "list", "--terminal", tid} }, readOnly: true, want: "TIME"},
		{args: func() []string { return []string{"report", "fleet"} }, readOnly: true, want: "NEVER_SEEN"},
		{args: func() []string { return []string{"report", "settlement", "--merchant", "MIDALL"} }, readOnly: true, want: "TOTAL"},
		{args: func() []string { return []string{"audit", "list", "--terminal", tid} }, readOnly: true, want: "TERMINAL_PROVISIONED"},
		{args: func() []string { return []string{"tokens", "create", "--name", "ops", "--role", "operator", "--json"} },
			after: func(out string) { tokenID = jsonField(out, "adminToken.tokenId") }},
		{args: func() []string { return []string{"tokens", "list"} }, readOnly: true, want: "ops"},
		{args: func() []string { return []string{"tokens", "revoke", "--id", tokenID} }, want: "true"},
		{args: func() []string { return []string{"keys", "rotate"} }, want: "RETIRED"},
		{args: func() []string {
			return []string{"webhooks", "create", "--url", hookURL, "--events", "merchant_mismatch", "--json"}
		},
			want: "whsec_", after: func(out string) { hookID = jsonField(out, "endpoint.endpointId") }},
		{args: func() []string { return []string{"webhooks", "list"} }, readOnly: true, want: hookURL},
		{args: func() []string { return []string{"webhooks", "get", "--id", hookID} }, readOnly: true, want: "merchant_mismatch"},
		{args: func() []string { return []string{"webhooks", "update", "--id", hookID, "--description", "pager"} }, want: hookID},
		{args: func() []string { return []string{"webhooks", "rotate-secret", "--id", hookID} }, want: "whsec_"},
		{args: func() []string {
			mismatchAlert(t, cli, "MIDWH", "SN-ALL-W")
			hookEvent = nextWebhook(t, hookGot).id
			waitDelivered(t, cli, hookID, hookEvent)
			return []string{"webhooks", "deliveries", "--id", hookID}
		}, readOnly: true, want: "DELIVERED"},
		{args: func() []string { return []string{"webhooks", "redeliver", "--id", hookID, "--event", hookEvent} }, want: "queued"},
		{args: func() []string { return []string{"webhooks", "delete", "--id", hookID} }, want: "deleted"},
		{args: func() []string {
			cli.Must("stores", "create", "--merchant", "MIDALL", "--id", "s2", "--name", "Two")
			return []string{"terminals", "rebind", "--id", tid, "--merchant", "MIDALL", "--store", "s2", "--reason", "moved"}
		}, want: "s2"},
		{args: func() []string { return []string{"terminals", "retire", "--id", tid, "--reason", "broken"} }, want: "RETIRED"},
		// Archiving prints the archive time (today), which a live record lacks.
		{args: func() []string {
			return []string{"stores", "archive", "--merchant", "MIDALL", "--id", "s2", "--reason", "closed"}
		}, want: "s2  "},
		{args: func() []string { return []string{"merchants", "archive", "--id", "MIDALL", "--reason", "left"} }, want: time.Now().UTC().Format("2006-01-02")},
	} {
		args := step.args()
		out := cli.Must(args...)
		cli.Expect(out, step.want)
		if step.after != nil {
			step.after(out)
		}
		if step.readOnly {
			if js := cli.Must(append(args, "--json")...); !json.Valid([]byte(js)) {
				t.Errorf("admin %s --json: not JSON:\n%s", strings.Join(args, " "), js)
			}
		}
		ran[args[0]+" "+args[1]] = true
	}
	for noun, verbs := range adminNouns {
		for verb := range verbs {
			if !ran[noun+" "+verb] {
				t.Errorf("admin %s %s has no row in this test", noun, verb)
			}
		}
	}
}

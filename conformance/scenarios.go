package conformance

import (
	"fmt"
	"slices"
	"strings"
)

// Scenario IDs: the short names Options.Scenarios and `posfleet
// conformance --scenarios` select scenarios by. Each plays one fault and
// grades one Result.
const (
	IDLostRegister  = "lost-register"
	IDLostAnswer    = "lost-answer"
	IDUnanswered    = "unanswered"
	IDGoaway        = "goaway"
	IDRateLimit     = "rate-limit"
	IDStreamReset   = "stream-reset"
	IDCommand       = "command"
	IDRejected      = "rejected-config"
	IDConfig        = "config"
	IDRotation      = "rotation"
	IDTombstone     = "tombstone"
	IDBatchMismatch = "batch-mismatch"
	IDBatch         = "batch"
)

// scenarioIDs lists every scenario in report order.
var scenarioIDs = []string{
	IDLostRegister, IDLostAnswer, IDUnanswered, IDGoaway, IDRateLimit, IDStreamReset,
	IDCommand, IDRejected, IDConfig, IDRotation, IDTombstone, IDBatchMismatch, IDBatch,
}

// ScenarioIDs returns the IDs of every scenario, in report order.
func ScenarioIDs() []string { return slices.Clone(scenarioIDs) }

// ParseScenarios reads a comma-separated list of scenario IDs; an empty
// list selects every scenario, and "all" stands for every scenario too.
// An ID prefixed with '-' leaves that scenario out ("all,-rotation").
func ParseScenarios(list string) ([]string, error) {
	if strings.TrimSpace(list) == "" {
		return ScenarioIDs(), nil
	}
	chosen := map[string]bool{}
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		drop := strings.HasPrefix(f, "-")
		f = strings.TrimPrefix(f, "-")
		switch {
		case f == "all":
			for _, id := range scenarioIDs {
				chosen[id] = !drop
			}
		case slices.Contains(scenarioIDs, f):
			chosen[f] = !drop
		default:
			return nil, fmt.Errorf("conformance: unknown scenario %q (known: %s)", f, strings.Join(scenarioIDs, ", "))
		}
	}
	var ids []string
	for _, id := range scenarioIDs {
		if chosen[id] {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("conformance: %q selects no scenario", list)
	}
	return ids, nil
}

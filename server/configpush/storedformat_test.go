package configpush

import (
	"testing"

	"github.com/posfleet/posfleet/internal/recordcheck"
)

// The short JSON names of a stored rollout are its on-disk format.
func TestRolloutRecJSONNames(t *testing.T) {
	recordcheck.JSONNames(t, rolloutRec{}, map[string]string{
		"Version": "v", "Scope": "sc", "Settings": "s", "Plan": "p", "Description": "d", "Actor": "a",
		"State": "st", "Stage": "stg", "StageVersions": "sv", "StageTimes": "stt",
		"HealthSince": "hs", "HealthEpoch": "he", "Awaiting": "aw", "Reason": "r",
		"Fallback": "fb", "FallbackTime": "fbt", "Created": "ct", "Updated": "ut",
		"Dropped": "dr", "Final": "fc", "RollbackOf": "rb",
	})
}

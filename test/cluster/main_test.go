package cluster_test

import (
	"testing"

	"github.com/posfleet/posfleet/internal/pgtest"
)

// TestMain stops the PostgreSQL cluster the tests start.
func TestMain(m *testing.M) { pgtest.Main(m) }

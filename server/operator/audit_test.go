package operator_test

import (
	"testing"
	"time"

	"github.com/posfleet/posfleet/internal/testclock"
	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/auth"
	"github.com/posfleet/posfleet/server/operator"
	"github.com/posfleet/posfleet/server/store/storetest"
)

// TestTokenEventsCommittedWithTheChange checks that a token's creation and
// revocation are audited in the commit that makes them: the events are
// listed without a Flush as soon as the calls return.
func TestTokenEventsCommittedWithTheChange(t *testing.T) {
	db := storetest.Open(t)
	defer db.Close()
	log, err := audit.Open(t.Context(), db, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	c := testclock.New(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	toks, err := operator.Open(t.Context(), db, operator.Options{NewSecret: secret, Now: c.Now, Audit: log}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	who := audit.Event{Actor: "admin:root", Peer: "127.0.0.1:1"}
	_, tok, err := toks.Create(ctx, "ops", auth.RoleOperator, time.Hour, who)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := toks.Revoke(ctx, tok.ID, who); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []audit.Type{audit.TokenCreated, audit.TokenRevoked} {
		evs, _, err := log.List(ctx, audit.Filter{Type: typ}, 10, "") // no Flush
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 1 || evs[0].Actor != who.Actor || evs[0].Peer != who.Peer || evs[0].Attributes["token_id"] != tok.ID {
			t.Errorf("events of type %d on disk when the call returned: got %+v, want one by %s for %s", typ, evs, who.Actor, tok.ID)
		}
	}
}

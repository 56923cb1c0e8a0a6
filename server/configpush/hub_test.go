package configpush_test

import (
	"context"
	"errors"
	"testing"

	"github.com/posfleet/posfleet/server/configpush"
)

func TestHubEvictsOldestWatch(t *testing.T) {
	h := configpush.NewHub(2)
	w1, _ := h.Subscribe("T1", 0)
	w2, _ := h.Subscribe("T1", 0)
	w3, _ := h.Subscribe("T1", 0)
	defer w2.Close()
	defer w3.Close()
	if _, _, err := w1.Next(t.Context()); !errors.Is(err, configpush.ErrWatchReplaced) {
		t.Errorf("oldest watch: %v, want ErrWatchReplaced", err)
	}
	if got := h.Watching(); got != 2 {
		t.Errorf("watching %d, want 2", got)
	}
	h.Publish("T1", &configpush.Effective{Version: 3})
	for i, w := range []*configpush.Watcher{w2, w3} {
		if cfg, _, err := w.Next(t.Context()); err != nil || cfg.Version != 3 {
			t.Errorf("watch %d got %v, %v; want version 3", i+2, cfg, err)
		}
	}
}

func TestHubLatestWinsAndCommands(t *testing.T) {
	h := configpush.NewHub(0)
	w, _ := h.Subscribe("T1", 5)
	defer w.Close()
	h.Publish("T1", &configpush.Effective{Version: 4}) // older than known: dropped
	h.Publish("T1", &configpush.Effective{Version: 7})
	h.Publish("T1", &configpush.Effective{Version: 6}) // out of order: dropped
	h.Publish("T1", &configpush.Effective{Version: 9})
	h.NotifyCommands("T1")
	cfg, cmds, err := w.Next(t.Context())
	if err != nil || cfg.Version != 9 || !cmds {
		t.Fatalf("Next = %v, %v, %v; want version 9 with commands", cfg, cmds, err)
	}
	h.NotifyCommands("T1")
	cfg, cmds, err = w.Next(t.Context())
	if err != nil || cfg != nil || !cmds {
		t.Fatalf("Next = %v, %v, %v; want commands only", cfg, cmds, err)
	}
	h.Publish("T1", &configpush.Effective{Version: 9}) // already taken
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := w.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Next with nothing new and a cancelled context: %v, want context.Canceled", err)
	}
}

func TestHubCloseEndsWatches(t *testing.T) {
	h := configpush.NewHub(0)
	w, _ := h.Subscribe("T1", 0)
	done := make(chan error, 1)
	go func() {
		_, _, err := w.Next(context.Background())
		done <- err
	}()
	h.Close()
	if err := <-done; !errors.Is(err, configpush.ErrClosed) {
		t.Errorf("Next after Close: %v, want ErrClosed", err)
	}
	if _, err := h.Subscribe("T1", 0); !errors.Is(err, configpush.ErrClosed) {
		t.Errorf("Subscribe after Close: %v, want ErrClosed", err)
	}
	w.Close() // unsubscribing after close is harmless
}

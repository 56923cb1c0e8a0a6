package configpush

import (
	"context"
	"sync"
)

// DefaultMaxWatchesPerTerminal bounds the concurrent watches of one
// terminal; a further watch closes the terminal's oldest one.
const DefaultMaxWatchesPerTerminal = 4

// Hub fans config versions and command notifications out to watchers. Each
// watcher has a one-slot buffer holding the newest config not yet taken
// (latest wins: every message is a full snapshot) and a pending-commands
// flag, so publishing never blocks, however slow a watcher is. It is safe
// for concurrent use.
type Hub struct {
	maxPerTerminal int

	mu sync.RWMutex // guards watchers and closed
	// watchers holds the open watchers of each terminal, oldest first.
	watchers map[string][]*Watcher
	closed   bool
}

// NewHub returns a hub allowing maxPerTerminal concurrent watches per
// terminal (DefaultMaxWatchesPerTerminal when not positive).
func NewHub(maxPerTerminal int) *Hub {
	if maxPerTerminal <= 0 {
		maxPerTerminal = DefaultMaxWatchesPerTerminal
	}
	return &Hub{maxPerTerminal: maxPerTerminal, watchers: map[string][]*Watcher{}}
}

// Watcher receives one terminal's config versions. Take them with Next;
// release it with Close.
type Watcher struct {
	hub        *Hub
	terminalID string
	// wake has room for one signal: set whenever the slot or the commands
	// flag changes.
	wake chan struct{}

	mu sync.Mutex // guards latest, sent, commands, err
	// latest is the newest config not yet taken, nil if none.
	latest *Effective
	// sent is the highest version handed out by Next (or known to the
	// terminal when it connected).
	sent uint64
	// commands is set when the terminal may have new remote commands.
	commands bool
	// err ends the watch: ErrClosed or ErrWatchReplaced.
	err error
}

// Subscribe opens a watcher for terminalID whose terminal already has
// knownVersion. If the terminal has more watches than allowed, its oldest
// is closed with ErrWatchReplaced.
func (h *Hub) Subscribe(terminalID string, knownVersion uint64) (*Watcher, error) {
	w := &Watcher{hub: h, terminalID: terminalID, wake: make(chan struct{}, 1), sent: knownVersion}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	list := append(h.watchers[terminalID], w)
	var evicted []*Watcher
	if over := len(list) - h.maxPerTerminal; over > 0 {
		evicted = append(evicted, list[:over]...)
		list = append([]*Watcher(nil), list[over:]...)
	}
	h.watchers[terminalID] = list
	h.mu.Unlock()
	for _, old := range evicted {
		old.stop(ErrWatchReplaced)
	}
	return w, nil
}

// Publish offers cfg to every watcher of terminalID. It never blocks.
func (h *Hub) Publish(terminalID string, cfg *Effective) {
	h.mu.RLock()
	list := h.watchers[terminalID]
	h.mu.RUnlock()
	for _, w := range list {
		w.offer(cfg)
	}
}

// NotifyCommands tells terminalID's watchers that remote commands may be
// waiting. It never blocks.
func (h *Hub) NotifyCommands(terminalID string) {
	h.mu.RLock()
	list := h.watchers[terminalID]
	h.mu.RUnlock()
	for _, w := range list {
		w.mu.Lock()
		w.commands = true
		w.mu.Unlock()
		w.signal()
	}
}

// CloseTerminal ends every watch of terminalID with ErrClosed (the terminal
// was retired).
func (h *Hub) CloseTerminal(terminalID string) {
	h.mu.Lock()
	list := h.watchers[terminalID]
	delete(h.watchers, terminalID)
	h.mu.Unlock()
	for _, w := range list {
		w.stop(ErrClosed)
	}
}

// Close ends every watch with ErrClosed and refuses new ones. Server
// shutdown calls it so that open streams do not hold up a graceful stop.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	all := h.watchers
	h.watchers = map[string][]*Watcher{}
	h.mu.Unlock()
	for _, list := range all {
		for _, w := range list {
			w.stop(ErrClosed)
		}
	}
}

// Watching returns the number of open watchers.
func (h *Hub) Watching() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	n := 0
	for _, list := range h.watchers {
		n += len(list)
	}
	return n
}

func (w *Watcher) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// offer puts cfg in the slot if it is newer than what the watcher has.
func (w *Watcher) offer(cfg *Effective) {
	w.mu.Lock()
	newer := cfg.Version > w.sent && (w.latest == nil || cfg.Version > w.latest.Version)
	if newer {
		w.latest = cfg
	}
	w.mu.Unlock()
	if newer {
		w.signal()
	}
}

func (w *Watcher) stop(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
	w.signal()
}

// Next waits until there is a config newer than every one handed out so far
// or a commands notification, and returns it: cfg is nil when only commands
// changed. It returns ctx's error when ctx ends, ErrClosed when the hub
// shuts down and ErrWatchReplaced when a newer watch replaced this one.
func (w *Watcher) Next(ctx context.Context) (cfg *Effective, commands bool, err error) {
	for {
		if cfg, commands, err = w.Poll(); err != nil || cfg != nil || commands {
			return cfg, commands, err
		}
		select {
		case <-ctx.Done():
			return nil, false, ctx.Err()
		case <-w.wake:
		}
	}
}

// Poll is Next without waiting: it returns nil and false when nothing is
// new.
func (w *Watcher) Poll() (cfg *Effective, commands bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return nil, false, w.err
	}
	cfg, commands = w.latest, w.commands
	w.latest, w.commands = nil, false
	if cfg != nil {
		w.sent = cfg.Version
	}
	return cfg, commands, nil
}

// Close unsubscribes the watcher. It is safe to call more than once.
func (w *Watcher) Close() {
	h := w.hub
	h.mu.Lock()
	list := h.watchers[w.terminalID]
	for i, x := range list {
		if x == w {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(h.watchers, w.terminalID)
	} else {
		h.watchers[w.terminalID] = list
	}
	h.mu.Unlock()
	w.stop(ErrClosed)
}

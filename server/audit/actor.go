package audit

// Actor is who asks for a change, for the audit trail: the engines take it
// with every change and copy it into the Actor and Peer of the events they
// record. It is never stored itself.
type Actor struct {
	// Name is "admin:<token id>", "terminal:<id>", "system" or "anonymous".
	Name string
	// Peer is the caller's network address, if known.
	Peer string
}

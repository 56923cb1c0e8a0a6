package client

// TargetOrder returns the order in which a client dialed with opt tries
// targets.
func TargetOrder(targets []string, opt Option) []string {
	var o options
	opt(&o)
	return o.order(targets)
}

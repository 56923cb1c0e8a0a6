package server

// SetCommitFault makes every commit of a server built from cfg call fn
// before committing; an error fails the commit (a failpoint for tests).
func SetCommitFault(cfg *Config, fn func() error) { cfg.commitFault = fn }

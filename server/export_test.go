package server

// SetCommitFault makes every commit of a server built from cfg call fn
// before committing; an error fails the commit (a failpoint for tests).
func SetCommitFault(cfg *Config, fn func() error) { cfg.commitFault = fn }

// SetStatfs makes a server built from cfg measure its free disk space with
// fn instead of statfs(2).
func SetStatfs(cfg *Config, fn func() (int64, error)) { cfg.statfs = fn }

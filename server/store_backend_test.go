package server

import "github.com/posfleet/posfleet/server/store/storetest"

// With POSFLEET_TEST_STORE=postgres, every server the tests open on a data
// directory keeps its storage in the PostgreSQL database standing for that
// directory (storetest.DirURL): a server reopened on the same directory
// finds its data. In-memory servers stay in memory.
func init() {
	if !storetest.Postgres() {
		return
	}
	testStore = func(cfg *Config) error {
		if cfg.InMemory || cfg.Store == StorePostgres {
			return nil
		}
		url, err := storetest.DirURL(cfg.DataDir)
		if err != nil {
			return err
		}
		cfg.Store, cfg.DatabaseURL = StorePostgres, url
		return nil
	}
}

package store

import (
	"os"

	"github.com/dgraph-io/badger/v4/table"
)

// SetTableVerified makes Open and the running database call fn for every
// table whose checksums they verify in full. fn may be called from a
// background goroutine.
func SetTableVerified(o *Options, fn func(id uint64)) { o.tableVerified = fn }

// TableTail returns where the tail of the table file at path starts: the
// part of the table the record of verified tables covers.
func TableTail(path string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return tableTail(data)
}

// RecordedTables returns the IDs of the tables recorded as verified in the
// data directory dir, in ascending order.
func RecordedTables(dir string) ([]uint64, error) {
	vt, err := loadVerifiedTables(dir)
	if err != nil {
		return nil, err
	}
	return vt.ids(), nil
}

// TableFile returns the path of table id in the data directory dir.
func TableFile(dir string, id uint64) string {
	return table.NewFilename(id, dir)
}

package store

import (
	"crypto/sha256"
	"io"
)

// CheckBackup reads a backup written by Backup from r to its end and checks
// it without loading it: ErrNotBackup when r does not hold one,
// ErrCorruptBackup when it is cut short, a record is damaged or the payload
// does not match the trailer's length and SHA-256.
func CheckBackup(r io.Reader) error {
	format, err := readHeader(r)
	if err != nil {
		return err
	}
	payload := &payloadReader{r: r, buf: make([]byte, 64<<10), sum: sha256.New()}
	recs, closeRecs, err := records(format, payload)
	if err != nil {
		return err
	}
	defer closeRecs()
	_, err = io.Copy(io.Discard, recs)
	return err
}

package store

import (
	"os"
	"syscall"
)

// datasync makes f's data durable. The watermark file is rewritten in
// place at a fixed size, so fdatasync skips the metadata (times) that
// fsync would also write.
func datasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }

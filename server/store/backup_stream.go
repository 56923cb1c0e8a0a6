package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/pb"
	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/proto"
)

// Format 2 of a backup compresses the payload with zstd and writes it with
// posfleet's own iteration instead of Badger's stream: one read
// transaction walks every live key in order and writes small lists of
// them, so memory stays at one list and the compressor's window whatever
// the database holds (Badger's stream buffers up to 32 lists of 32 MiB
// when the writer is slower than the reader). The header and trailer are
// format 1's; the trailer's length and SHA-256 are of the compressed
// payload, which decompresses to format 1's records.
const (
	backupFormatZstd = 2

	// backupListKeys and backupListBytes bound one record's list.
	backupListKeys  = 1024
	backupListBytes = 1 << 20

	// restorePendingWrites bounds the batches Restore has in flight.
	restorePendingWrites = 16

	// zstdWindow is the compressor's window: the decompressor needs as
	// much memory.
	zstdWindow = 4 << 20
)

// backupStream writes the live keys of the database as of one read
// timestamp to w as format 2's payload (before compression).
func (db *DB) backupStream(ctx context.Context, w io.Writer) error {
	return db.bdb.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		it := txn.NewIterator(opts)
		defer it.Close()
		var (
			list  pb.KVList
			size  int
			buf   []byte
			lenbf [8]byte
		)
		flush := func() error {
			if len(list.Kv) == 0 {
				return nil
			}
			var err error
			if buf, err = (proto.MarshalOptions{}).MarshalAppend(buf[:0], &list); err != nil {
				return err
			}
			binary.LittleEndian.PutUint64(lenbf[:], uint64(len(buf)))
			if _, err := w.Write(lenbf[:]); err != nil {
				return err
			}
			if _, err := w.Write(buf); err != nil {
				return err
			}
			clear(list.Kv)
			list.Kv, size = list.Kv[:0], 0
			return ctx.Err()
		}
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			kv := &pb.KV{
				Key:       item.KeyCopy(nil),
				Value:     v,
				UserMeta:  []byte{item.UserMeta()},
				Version:   item.Version(),
				ExpiresAt: item.ExpiresAt(),
				Meta:      []byte{0},
			}
			list.Kv = append(list.Kv, kv)
			size += len(kv.Key) + len(v) + 32
			if len(list.Kv) >= backupListKeys || size >= backupListBytes {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		return flush()
	})
}

// writeBackupZstd writes a format 2 backup to w.
func (db *DB) writeBackupZstd(ctx context.Context, w io.Writer) error {
	header := binary.BigEndian.AppendUint32([]byte(backupMagic), backupFormatZstd)
	if _, err := w.Write(header); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	pw := &payloadWriter{ctx: ctx, w: w, sum: sha256.New()}
	zw, err := zstd.NewWriter(pw, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(zstdWindow))
	if err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	if err := db.backupStream(ctx, zw); err != nil {
		zw.Close()
		return fmt.Errorf("store: backup: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	if _, err := w.Write(pw.trailer()); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	return nil
}

// records returns the reader of a backup's records (length and KVList
// protobuf each) over its payload: format 2's is decompressed. close
// releases the decompressor.
func records(format uint32, payload io.Reader) (r io.Reader, close func(), err error) {
	if format != backupFormatZstd {
		return &recordReader{r: payload}, func() {}, nil
	}
	zr, err := zstd.NewReader(payload, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(zstdWindow), zstd.WithDecoderMaxMemory(maxRecordSize))
	if err != nil {
		return nil, nil, err
	}
	return &recordReader{r: &zstdErrors{zr}}, zr.Close, nil
}

// zstdErrors reports a payload that does not decompress as a corrupt
// backup.
type zstdErrors struct{ r io.Reader }

func (z *zstdErrors) Read(b []byte) (int, error) {
	n, err := z.r.Read(b)
	if err != nil && err != io.EOF && !errors.Is(err, ErrCorruptBackup) {
		err = fmt.Errorf("%w: %v", ErrCorruptBackup, err)
	}
	return n, err
}

package server

import (
	"strconv"

	"google.golang.org/grpc"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server/audit"
)

// backupChunkSize bounds the data of one BackupResponse, well below the
// 4 MiB a gRPC client accepts by default.
const backupChunkSize = 1 << 20

// Backup streams a consistent backup of the database (store.DB.Backup) in
// chunks of at most backupChunkSize bytes.
func (a *adminService) Backup(_ *pb.BackupRequest, stream grpc.ServerStreamingServer[pb.BackupResponse]) error {
	ctx := stream.Context()
	w := &chunkWriter{send: func(b []byte) error { return stream.Send(&pb.BackupResponse{Data: b}) }}
	w.buf = make([]byte, 0, backupChunkSize)
	err := a.s.eng.DB.Backup(ctx, w)
	if err == nil {
		err = w.flush()
	}
	if err != nil {
		return a.s.toStatus(ctx, err)
	}
	who := actor(ctx)
	a.s.eng.Audit.Record(audit.Event{Type: audit.BackupTaken, Actor: who.Name, Peer: who.Peer, Message: "online backup taken",
		Attributes: map[string]string{"bytes": strconv.FormatInt(w.n, 10)}})
	return nil
}

// chunkWriter gathers what is written into chunks of at most cap(buf) bytes
// and hands each full chunk to send, which may keep it: gRPC may still read
// a message after Send returns.
type chunkWriter struct {
	send func([]byte) error
	buf  []byte
	n    int64 // bytes written
}

func (w *chunkWriter) Write(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		k := min(len(b), cap(w.buf)-len(w.buf))
		w.buf = append(w.buf, b[:k]...)
		b, written = b[k:], written+k
		w.n += int64(k)
		if len(w.buf) == cap(w.buf) {
			if err := w.flush(); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

// flush sends what is buffered, if anything.
func (w *chunkWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	err := w.send(w.buf)
	w.buf = make([]byte, 0, cap(w.buf))
	return err
}

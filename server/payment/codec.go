package payment

import (
	"encoding/binary"
	"fmt"
)

// Record values begin with a schema version byte and a record type byte,
// followed by varint-encoded fields (see keys.go for the keyspace).
// The single-letter type bytes are written into every record: they are
// part of the on-disk format and stay as they are.
const (
	schemaV1 = 1

	recTx        = 't'
	recChunk     = 'l'
	recRequest   = 'r'
	recTombstone = 'x'
	recReqIndex  = 'i'
	recMeta      = 'm'
	recBatch     = 'b'
)

// encoder appends varint-encoded fields.
type encoder struct{ b []byte }

func newEncoder(rec byte, size int) *encoder {
	e := &encoder{b: make([]byte, 0, size)}
	e.b = append(e.b, recordVersion(rec), rec)
	return e
}

// recordVersion returns the schema version records of type rec are
// written and read with. Version 2 of commit chunks added the hash chain;
// version 2 of Reverse and CloseBatch records keeps the reversed
// authorization's sequence number instead of its ID.
func recordVersion(rec byte) byte {
	switch rec {
	case recChunk, recRequest:
		return 2
	}
	return schemaV1
}

func (e *encoder) uint(v uint64)  { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) int(v int64)    { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) str(s string)   { e.uint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *encoder) bytes(p []byte) { e.uint(uint64(len(p))); e.b = append(e.b, p...) }
func (e *encoder) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

func (e *encoder) totals(t *BatchTotals) {
	e.str(t.Currency)
	e.uint(t.SaleCount)
	e.int(t.SaleAmount)
	e.uint(t.RefundCount)
	e.int(t.RefundAmount)
	e.uint(t.ReversalCount)
	e.int(t.ReversalAmount)
	e.uint(t.PreauthCount)
	e.int(t.PreauthAmount)
}

// errCorrupt is a record that does not decode.
var errCorrupt = fmt.Errorf("%w: a record does not decode", ErrCorrupt)

// decoder reads fields written by encoder; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func newDecoder(v []byte, rec byte) *decoder {
	d := &decoder{b: v}
	switch {
	case len(v) < 2:
		d.err = errCorrupt
	case v[1] != rec:
		d.err = fmt.Errorf("%w: record type %q, want %q", errCorrupt, v[1], rec)
	case v[0] != recordVersion(rec):
		d.err = fmt.Errorf("%w: schema version %d of a %q record, want %d", errCorrupt, v[0], rec, recordVersion(rec))
	default:
		d.b = v[2:]
	}
	return d
}

func (d *decoder) uint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) int() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) raw() []byte {
	n := d.uint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errCorrupt
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) str() string { return string(d.raw()) }

func (d *decoder) bool() bool {
	if d.err != nil {
		return false
	}
	if len(d.b) == 0 {
		d.err = errCorrupt
		return false
	}
	v := d.b[0] != 0
	d.b = d.b[1:]
	return v
}

func (d *decoder) totals() BatchTotals {
	return BatchTotals{
		Currency:       d.str(),
		SaleCount:      d.uint(),
		SaleAmount:     d.int(),
		RefundCount:    d.uint(),
		RefundAmount:   d.int(),
		ReversalCount:  d.uint(),
		ReversalAmount: d.int(),
		PreauthCount:   d.uint(),
		PreauthAmount:  d.int(),
	}
}

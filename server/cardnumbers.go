package server

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/posfleet/posfleet/server/pan"
)

// cardNumberExempt names the request fields whose values are not read for
// card numbers, and why. Every other string field, map key and map value of
// every request message, nested messages included, is: a field added later
// is checked without anyone remembering to.
var cardNumberExempt = map[protoreflect.Name]string{
	// Acquirer merchant IDs may be 15 digits (UnionPay-style: acquirer,
	// region, MCC, sequence), and one in ten of those passes the Luhn
	// check. Handlers hold merchant IDs to 1-15 letters and digits, so no
	// 16-19 digit number or printed card number gets through, and a
	// 15-digit one must embed the merchant's MCC.
	"merchant_id":         "acquirer MID format",
	"claimed_merchant_id": "acquirer MID format",
	// Server-issued identifiers: handlers accept only the server's own
	// format, and they are looked up, never stored as sent. Their hex or
	// decimal digits may form a Luhn-valid run.
	"authorization_id": "server-issued",
	"command_id":       "server-issued",
	"token_id":         "server-issued",
	"page_token":       "server-issued",
}

// checkCardNumbers records a violation for every string field, map key and
// map value of m (nested messages and lists included) that holds a card
// number. Violations name the field, never the value; a map key that holds
// one is reported on the map field.
func checkCardNumbers(m protoreflect.Message, prefix string, v *violations) {
	m.Range(func(fd protoreflect.FieldDescriptor, val protoreflect.Value) bool {
		if _, ok := cardNumberExempt[fd.Name()]; ok {
			return true
		}
		field := prefix + string(fd.Name())
		value := func(kind protoreflect.Kind, path string, x protoreflect.Value) {
			switch kind {
			case protoreflect.StringKind:
				if holdsCardValue(kind, x) {
					v.add(path, "%s", pan.Reason)
				}
			case protoreflect.MessageKind, protoreflect.GroupKind:
				checkCardNumbers(x.Message(), path+".", v)
			}
		}
		switch {
		case fd.IsList():
			l := val.List()
			for i := range l.Len() {
				value(fd.Kind(), fieldAt(field, i), l.Get(i))
			}
		case fd.IsMap():
			val.Map().Range(func(k protoreflect.MapKey, x protoreflect.Value) bool {
				key := k.String()
				if fd.MapKey().Kind() == protoreflect.StringKind && pan.Contains(key) {
					v.add(field, "has a key that %s", pan.Reason)
					return true
				}
				path := field + "[?]"
				if paramKeyFormat.MatchString(key) {
					path = field + "[" + key + "]"
				}
				value(fd.MapValue().Kind(), path, x)
				return true
			})
		default:
			value(fd.Kind(), field, val)
		}
		return true
	})
}

// holdsCardNumber reports whether checkCardNumbers would find anything in
// m. It builds no field paths and no closures but for maps: almost every
// request holds no card number, and this runs on every call, payments
// included.
func holdsCardNumber(m protoreflect.Message) bool {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if _, ok := cardNumberExempt[fd.Name()]; ok || !m.Has(fd) {
			continue
		}
		val := m.Get(fd)
		switch {
		case fd.IsList():
			l := val.List()
			for j := range l.Len() {
				if holdsCardValue(fd.Kind(), l.Get(j)) {
					return true
				}
			}
		case fd.IsMap():
			found := false
			val.Map().Range(func(k protoreflect.MapKey, x protoreflect.Value) bool {
				found = fd.MapKey().Kind() == protoreflect.StringKind && pan.Contains(k.String()) ||
					holdsCardValue(fd.MapValue().Kind(), x)
				return !found
			})
			if found {
				return true
			}
		case holdsCardValue(fd.Kind(), val):
			return true
		}
	}
	return false
}

// holdsCardValue reports whether one value of a field holds a card number.
func holdsCardValue(kind protoreflect.Kind, x protoreflect.Value) bool {
	switch kind {
	case protoreflect.StringKind:
		return pan.Contains(x.String())
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return holdsCardNumber(x.Message())
	}
	return false
}

// refuseCardNumbers returns an InvalidArgument status when req holds a card
// number anywhere, else nil.
func refuseCardNumbers(req any) error {
	m, ok := req.(proto.Message)
	if !ok || !holdsCardNumber(m.ProtoReflect()) {
		return nil
	}
	var v violations
	checkCardNumbers(m.ProtoReflect(), "", &v)
	return v.err()
}

// cardNumberUnary refuses unary requests that hold a card number before the
// handler sees them.
func cardNumberUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := refuseCardNumbers(req); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// cardNumberStream refuses stream messages that hold a card number before
// the handler sees them.
func cardNumberStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, &cardNumberCheckedStream{ss})
}

type cardNumberCheckedStream struct{ grpc.ServerStream }

func (s *cardNumberCheckedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return refuseCardNumbers(m)
}

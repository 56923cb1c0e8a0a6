package server

import (
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// fakeStream hands out one message.
type fakeStream struct {
	grpc.ServerStream
	msg proto.Message
}

func (f *fakeStream) RecvMsg(m any) error {
	proto.Merge(m.(proto.Message), f.msg)
	return nil
}

// TestStreamMessagesAreChecked checks that messages received on a stream
// are read for card numbers like unary requests.
func TestStreamMessagesAreChecked(t *testing.T) {
	tests := []struct {
		msg  proto.Message
		code codes.Code
	}{
		{&pb.AckConfigRequest{Detail: "4111 1111 1111 1111"}, codes.InvalidArgument},
		{&pb.AckConfigRequest{Detail: "bad receipt width"}, codes.OK},
	}
	for _, tt := range tests {
		var got codes.Code
		err := cardNumberStream(nil, &fakeStream{msg: tt.msg}, nil, func(_ any, ss grpc.ServerStream) error {
			return ss.RecvMsg(new(pb.AckConfigRequest))
		})
		if got = status.Code(err); got != tt.code {
			t.Errorf("stream message %v: got %v, want %v", tt.msg, got, tt.code)
		}
	}
}

// BenchmarkCheckCardNumbersAuthorize measures the walk on the payment hot
// path.
func BenchmarkCheckCardNumbersAuthorize(b *testing.B) {
	req := &pb.AuthorizeRequest{
		RequestId: "6f1c1ed1-0955-4884-9833-3b561c09bea6", MerchantId: "M1",
		Amount: &pb.Money{MinorUnits: 1250, Currency: "NZD"},
		Card:   &pb.Card{Token: "tok_5f0c8a7e9b2d4c1a", MaskedPan: "411111******1111", EntryMode: pb.EntryMode_ENTRY_MODE_CHIP},
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := refuseCardNumbers(req); err != nil {
			b.Fatal(err)
		}
	}
}

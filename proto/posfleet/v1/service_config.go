package posfleetv1

import _ "embed"

// ServiceConfigJSON is the gRPC service config that posfleet clients should
// dial with (in Go: grpc.WithDefaultServiceConfig): per-method deadlines,
// and automatic retries of Unavailable for the RPCs that are safe to send
// again (the payment RPCs, idempotent by request_id; Heartbeat, AckConfig,
// AckCommand and VerifyMerchant). Register and RotateCredential are not
// retried automatically, and WatchConfig, a stream, is reopened by the
// client's own reconnect loop. The retry rules behind it are written in
// the service comments of terminal.proto and payment.proto.
//
//go:embed service_config.json
var ServiceConfigJSON string

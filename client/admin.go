package client

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// Typed helpers over the AdminService for merchants, stores, terminals,
// remote commands, reports, the audit trail and admin tokens. The client
// must be dialed WithBearer(adminToken). Errors are gRPC status errors.

// CreateMerchant creates m (merchant_id, legal_name, mcc and currency are
// required) and returns it with its server-set fields.
func (c *Client) CreateMerchant(ctx context.Context, m *pb.Merchant) (*pb.Merchant, error) {
	resp, err := c.Admin().CreateMerchant(ctx, &pb.CreateMerchantRequest{Merchant: m})
	return resp.GetMerchant(), err
}

// GetMerchant returns one merchant.
func (c *Client) GetMerchant(ctx context.Context, merchantID string) (*pb.Merchant, error) {
	resp, err := c.Admin().GetMerchant(ctx, &pb.GetMerchantRequest{MerchantId: merchantID})
	return resp.GetMerchant(), err
}

// UpdateMerchant changes the named fields of m (legal_name, display_name,
// mcc, currency, address; none: every non-empty one) and returns the merchant
// with its new identity version.
func (c *Client) UpdateMerchant(ctx context.Context, m *pb.Merchant, fields ...string) (*pb.Merchant, error) {
	req := &pb.UpdateMerchantRequest{Merchant: m}
	if len(fields) > 0 {
		req.UpdateMask = &fieldmaskpb.FieldMask{Paths: fields}
	}
	resp, err := c.Admin().UpdateMerchant(ctx, req)
	return resp.GetMerchant(), err
}

// AllMerchants returns every merchant, following pages.
func (c *Client) AllMerchants(ctx context.Context) ([]*pb.Merchant, error) {
	var out []*pb.Merchant
	tok := ""
	for {
		resp, err := c.Admin().ListMerchants(ctx, &pb.ListMerchantsRequest{PageSize: 1000, PageToken: tok})
		if err != nil {
			return out, err
		}
		out = append(out, resp.GetMerchants()...)
		if tok = resp.GetNextPageToken(); tok == "" {
			return out, nil
		}
	}
}

// CreateStore creates a store (merchant_id, store_id and name are required).
func (c *Client) CreateStore(ctx context.Context, s *pb.Store) (*pb.Store, error) {
	resp, err := c.Admin().CreateStore(ctx, &pb.CreateStoreRequest{Store: s})
	return resp.GetStore(), err
}

// AllStores returns every store of a merchant ("" for all merchants),
// following pages.
func (c *Client) AllStores(ctx context.Context, merchantID string) ([]*pb.Store, error) {
	var out []*pb.Store
	tok := ""
	for {
		resp, err := c.Admin().ListStores(ctx, &pb.ListStoresRequest{MerchantId: merchantID, PageSize: 1000, PageToken: tok})
		if err != nil {
			return out, err
		}
		out = append(out, resp.GetStores()...)
		if tok = resp.GetNextPageToken(); tok == "" {
			return out, nil
		}
	}
}

// ProvisionTerminal creates a terminal for a device and returns its terminal
// ID and single-use enrollment code. enrollmentTTL zero means the server's
// default (72h).
func (c *Client) ProvisionTerminal(ctx context.Context, serial, merchantID, storeID, label string, enrollmentTTL time.Duration) (*pb.ProvisionTerminalResponse, error) {
	req := &pb.ProvisionTerminalRequest{SerialNumber: serial, MerchantId: merchantID, StoreId: storeID, Label: label}
	if enrollmentTTL > 0 {
		req.EnrollmentTtl = durationpb.New(enrollmentTTL)
	}
	return c.Admin().ProvisionTerminal(ctx, req)
}

// GetTerminal returns one terminal with its latest status.
func (c *Client) GetTerminal(ctx context.Context, terminalID string) (*pb.Terminal, error) {
	resp, err := c.Admin().GetTerminal(ctx, &pb.GetTerminalRequest{TerminalId: terminalID})
	return resp.GetTerminal(), err
}

// AllTerminals returns every terminal matching filter (its page fields are
// ignored), following pages.
func (c *Client) AllTerminals(ctx context.Context, filter *pb.ListTerminalsRequest) ([]*pb.Terminal, error) {
	req := &pb.ListTerminalsRequest{}
	if filter != nil {
		req.MerchantId, req.StoreId, req.State, req.Connectivity = filter.GetMerchantId(), filter.GetStoreId(), filter.GetState(), filter.GetConnectivity()
	}
	req.PageSize = 1000
	var out []*pb.Terminal
	for {
		resp, err := c.Admin().ListTerminals(ctx, req)
		if err != nil {
			return out, err
		}
		out = append(out, resp.GetTerminals()...)
		if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
			return out, nil
		}
	}
}

// SuspendTerminal suspends a terminal; reason goes to the audit trail.
func (c *Client) SuspendTerminal(ctx context.Context, terminalID, reason string) (*pb.Terminal, error) {
	resp, err := c.Admin().SuspendTerminal(ctx, &pb.SuspendTerminalRequest{TerminalId: terminalID, Reason: reason})
	return resp.GetTerminal(), err
}

// ReactivateTerminal lifts a suspension.
func (c *Client) ReactivateTerminal(ctx context.Context, terminalID, reason string) (*pb.Terminal, error) {
	resp, err := c.Admin().ReactivateTerminal(ctx, &pb.ReactivateTerminalRequest{TerminalId: terminalID, Reason: reason})
	return resp.GetTerminal(), err
}

// RetireTerminal retires a terminal for good.
func (c *Client) RetireTerminal(ctx context.Context, terminalID, reason string) (*pb.Terminal, error) {
	resp, err := c.Admin().RetireTerminal(ctx, &pb.RetireTerminalRequest{TerminalId: terminalID, Reason: reason})
	return resp.GetTerminal(), err
}

// ReissueEnrollment issues a new enrollment code for a terminal (the old one
// stops working); ttl zero means the server's default.
func (c *Client) ReissueEnrollment(ctx context.Context, terminalID string, ttl time.Duration) (*pb.ReissueEnrollmentResponse, error) {
	req := &pb.ReissueEnrollmentRequest{TerminalId: terminalID}
	if ttl > 0 {
		req.EnrollmentTtl = durationpb.New(ttl)
	}
	return c.Admin().ReissueEnrollment(ctx, req)
}

// RebindTerminal moves a terminal to another store, possibly of another
// merchant. reason is required and audited.
func (c *Client) RebindTerminal(ctx context.Context, terminalID, merchantID, storeID, reason string) (*pb.Terminal, error) {
	resp, err := c.Admin().RebindTerminal(ctx, &pb.RebindTerminalRequest{TerminalId: terminalID, MerchantId: merchantID, StoreId: storeID, Reason: reason})
	return resp.GetTerminal(), err
}

// SendCommand queues a remote command; ttl zero means the server's default
// (24h).
func (c *Client) SendCommand(ctx context.Context, terminalID string, typ pb.CommandType, params map[string]string, ttl time.Duration) (*pb.RemoteCommand, error) {
	req := &pb.SendCommandRequest{TerminalId: terminalID, Type: typ, Parameters: params}
	if ttl > 0 {
		req.Ttl = durationpb.New(ttl)
	}
	resp, err := c.Admin().SendCommand(ctx, req)
	return resp.GetCommand(), err
}

// AllCommands returns every command of a terminal, newest first.
func (c *Client) AllCommands(ctx context.Context, terminalID string) ([]*pb.RemoteCommand, error) {
	var out []*pb.RemoteCommand
	tok := ""
	for {
		resp, err := c.Admin().ListCommands(ctx, &pb.ListCommandsRequest{TerminalId: terminalID, PageSize: 1000, PageToken: tok})
		if err != nil {
			return out, err
		}
		out = append(out, resp.GetCommands()...)
		if tok = resp.GetNextPageToken(); tok == "" {
			return out, nil
		}
	}
}

// FleetReport returns the fleet report of a merchant or store ("" for the
// whole fleet).
func (c *Client) FleetReport(ctx context.Context, merchantID, storeID string) (*pb.GetFleetReportResponse, error) {
	return c.Admin().GetFleetReport(ctx, &pb.GetFleetReportRequest{MerchantId: merchantID, StoreId: storeID})
}

// AuditEvents returns up to limit audit events matching filter (its page
// fields are ignored), newest first, following pages.
func (c *Client) AuditEvents(ctx context.Context, filter *pb.ListAuditEventsRequest, limit int) ([]*pb.AuditEvent, error) {
	req := &pb.ListAuditEventsRequest{}
	if filter != nil {
		req.Type, req.TerminalId, req.MerchantId, req.StartTime, req.EndTime = filter.GetType(), filter.GetTerminalId(), filter.GetMerchantId(), filter.GetStartTime(), filter.GetEndTime()
	}
	var out []*pb.AuditEvent
	for len(out) < limit {
		req.PageSize = int32(min(limit-len(out), 1000))
		resp, err := c.Admin().ListAuditEvents(ctx, req)
		if err != nil {
			return out, err
		}
		out = append(out, resp.GetEvents()...)
		if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
			break
		}
	}
	return out, nil
}

// CreateAdminToken creates an admin token (ADMIN only) and returns its
// secret, shown only here, and its metadata. ttl zero means no expiry.
func (c *Client) CreateAdminToken(ctx context.Context, name string, role pb.Role, ttl time.Duration) (string, *pb.AdminToken, error) {
	req := &pb.CreateAdminTokenRequest{Name: name, Role: role}
	if ttl > 0 {
		req.Ttl = durationpb.New(ttl)
	}
	resp, err := c.Admin().CreateAdminToken(ctx, req)
	return resp.GetToken(), resp.GetAdminToken(), err
}

// RevokeAdminToken revokes an admin token (ADMIN only).
func (c *Client) RevokeAdminToken(ctx context.Context, tokenID string) (*pb.AdminToken, error) {
	resp, err := c.Admin().RevokeAdminToken(ctx, &pb.RevokeAdminTokenRequest{TokenId: tokenID})
	return resp.GetAdminToken(), err
}

// RotateSigningKey makes a new identity signing key the active one (ADMIN
// only) and returns every published key, the new one first.
func (c *Client) RotateSigningKey(ctx context.Context) ([]*pb.SigningKey, error) {
	resp, err := c.Admin().RotateSigningKey(ctx, &pb.RotateSigningKeyRequest{})
	return resp.GetKeys(), err
}

// ListAdminTokens lists every admin token without its secret (ADMIN only),
// following next_page_token.
func (c *Client) ListAdminTokens(ctx context.Context) ([]*pb.AdminToken, error) {
	var out []*pb.AdminToken
	tok := ""
	for {
		resp, err := c.Admin().ListAdminTokens(ctx, &pb.ListAdminTokensRequest{PageSize: 1000, PageToken: tok})
		if err != nil {
			return out, err
		}
		out = append(out, resp.GetAdminTokens()...)
		if tok = resp.GetNextPageToken(); tok == "" {
			return out, nil
		}
	}
}

// SettlementReport returns a merchant's whole settlement report for a
// business date ("YYYY-MM-DD"; empty means today, UTC): it follows
// next_page_token and returns one response holding every batch, with the
// totals and generate time of the first page.
func (c *Client) SettlementReport(ctx context.Context, merchantID, businessDate string) (*pb.GetSettlementReportResponse, error) {
	var out *pb.GetSettlementReportResponse
	tok := ""
	for {
		resp, err := c.Admin().GetSettlementReport(ctx, &pb.GetSettlementReportRequest{MerchantId: merchantID, BusinessDate: businessDate, PageSize: 1000, PageToken: tok})
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = resp
		} else {
			out.Batches = append(out.Batches, resp.GetBatches()...)
		}
		if tok = resp.GetNextPageToken(); tok == "" {
			out.NextPageToken = ""
			return out, nil
		}
	}
}

package server

import (
	"context"
	"slices"
	"time"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/auth"
	"github.com/posfleet/posfleet/server/operator"
)

// Bounds of an admin token's lifetime.
const (
	minTokenTTL = time.Minute
	maxTokenTTL = 10 * 365 * 24 * time.Hour
)

// CreateAdminToken creates an admin token; the secret is returned once.
func (a *adminService) CreateAdminToken(ctx context.Context, req *pb.CreateAdminTokenRequest) (*pb.CreateAdminTokenResponse, error) {
	var v violations
	v.text("name", req.GetName(), 64)
	v.enum("role", int32(req.GetRole()), pb.Role_name, false)
	ttl := v.duration("ttl", req.GetTtl(), minTokenTTL, maxTokenTTL)
	if err := v.err(); err != nil {
		return nil, err
	}
	who := actor(ctx)
	secret, tok, err := a.s.eng.Tokens.Create(ctx, req.GetName(), auth.Role(req.GetRole()), ttl, audit.Event{Actor: who.Name, Peer: who.Peer})
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
	}
	return &pb.CreateAdminTokenResponse{Token: secret, AdminToken: tokenToPB(tok)}, nil
}

// RevokeAdminToken revokes an admin token.
func (a *adminService) RevokeAdminToken(ctx context.Context, req *pb.RevokeAdminTokenRequest) (*pb.RevokeAdminTokenResponse, error) {
	var v violations
	if v.required("token_id", req.GetTokenId()) {
		v.match("token_id", req.GetTokenId(), tokenIDFormat, "a token ID such as \"tok_0123456789ab\"")
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	who := actor(ctx)
	tok, err := a.s.eng.Tokens.Revoke(ctx, req.GetTokenId(), audit.Event{Actor: who.Name, Peer: who.Peer})
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
	}
	return &pb.RevokeAdminTokenResponse{AdminToken: tokenToPB(tok)}, nil
}

// ListAdminTokens lists admin tokens without their secrets, oldest first.
// The page token is the ID of the last token of the previous page.
func (a *adminService) ListAdminTokens(ctx context.Context, req *pb.ListAdminTokensRequest) (*pb.ListAdminTokensResponse, error) {
	var v violations
	n := v.pageSize("page_size", req.GetPageSize())
	v.optional("page_token", req.GetPageToken(), 64)
	if err := v.err(); err != nil {
		return nil, err
	}
	all := a.s.eng.Tokens.List()
	start := 0
	if tok := req.GetPageToken(); tok != "" {
		i := slices.IndexFunc(all, func(t operator.Token) bool { return t.ID == tok })
		if i < 0 {
			v.add("page_token", "is not a token this list returned")
			return nil, v.err()
		}
		start = i + 1
	}
	toks, next, err := boundedPage(a.s.cfg.MaxPageBytes, n, func(n int) ([]operator.Token, string, error) {
		page := all[start:min(start+n, len(all))]
		if start+n < len(all) {
			return page, page[len(page)-1].ID, nil
		}
		return page, "", nil
	}, tokenToPB)
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
	}
	return &pb.ListAdminTokensResponse{AdminTokens: toks, NextPageToken: next}, nil
}

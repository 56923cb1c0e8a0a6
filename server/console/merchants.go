package console

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

type merchantsData struct {
	Merchants []*pb.Merchant
	Next      string
}

// merchants lists merchants with a create form.
func (c *Console) merchants(q *request) { c.showMerchants(q, &view{Form: url.Values{}}) }

func (c *Console) showMerchants(q *request, v *view) {
	ctx, cancel := q.ctx()
	defer cancel()
	resp, err := c.admin.ListMerchants(ctx, &pb.ListMerchantsRequest{PageSize: 100, PageToken: q.r.URL.Query().Get("page")})
	if err != nil {
		q.mustNot(err)
		return
	}
	d := &merchantsData{Merchants: resp.GetMerchants()}
	if next := resp.GetNextPageToken(); next != "" {
		d.Next = queryWith(url.Values{}, "page", next)
	}
	v.Title, v.D = "Merchants", d
	q.renderPage("merchants", v)
}

// merchantOf reads the merchant form.
func merchantOf(f url.Values, id string) *pb.Merchant {
	return &pb.Merchant{
		MerchantId: id, LegalName: strings.TrimSpace(f.Get("legal_name")), DisplayName: strings.TrimSpace(f.Get("display_name")),
		Mcc: strings.TrimSpace(f.Get("mcc")), Currency: strings.TrimSpace(f.Get("currency")),
	}
}

// createMerchant creates a merchant; refusals are shown next to the fields.
func (c *Console) createMerchant(q *request) {
	ctx, cancel := q.ctx()
	defer cancel()
	f := q.r.PostForm
	m := merchantOf(f, strings.TrimSpace(f.Get("merchant_id")))
	if _, err := c.admin.CreateMerchant(ctx, &pb.CreateMerchantRequest{Merchant: m}); err != nil {
		if ce := q.failed(err); ce != nil {
			q.w.WriteHeader(httpStatus(ce))
			c.showMerchants(q, &view{Err: ce.Message, Fields: ce.Fields, Form: f})
		}
		return
	}
	http.Redirect(q.w, q.r, "/merchants/"+url.PathEscape(m.GetMerchantId())+"?done=created", http.StatusSeeOther)
}

type merchantData struct {
	M      *pb.Merchant
	Stores []*pb.Store
}

// merchant shows a merchant with its edit form and stores.
func (c *Console) merchant(q *request) { c.showMerchant(q, &view{}) }

func (c *Console) showMerchant(q *request, v *view) {
	ctx, cancel := q.ctx()
	defer cancel()
	id := q.r.PathValue("id")
	m, err := c.admin.GetMerchant(ctx, &pb.GetMerchantRequest{MerchantId: id})
	if err != nil {
		q.mustNot(err)
		return
	}
	st, err := c.admin.ListStores(ctx, &pb.ListStoresRequest{MerchantId: id, PageSize: 1000})
	if err != nil {
		q.mustNot(err)
		return
	}
	if v.Form == nil {
		mm := m.GetMerchant()
		v.Form = url.Values{"legal_name": {mm.GetLegalName()}, "display_name": {mm.GetDisplayName()}, "mcc": {mm.GetMcc()}, "currency": {mm.GetCurrency()}}
	}
	v.Title, v.D = "Merchant", &merchantData{M: m.GetMerchant(), Stores: st.GetStores()}
	q.renderPage("merchant", v)
}

// updateMerchant changes a merchant's names, MCC or currency.
func (c *Console) updateMerchant(q *request) {
	ctx, cancel := q.ctx()
	defer cancel()
	id := q.r.PathValue("id")
	f := q.r.PostForm
	_, err := c.admin.UpdateMerchant(ctx, &pb.UpdateMerchantRequest{
		Merchant:   merchantOf(f, id),
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"legal_name", "display_name", "mcc", "currency"}},
	})
	if err != nil {
		if ce := q.failed(err); ce != nil {
			q.w.WriteHeader(httpStatus(ce))
			c.showMerchant(q, &view{Err: ce.Message, Fields: ce.Fields, Form: f})
		}
		return
	}
	http.Redirect(q.w, q.r, "/merchants/"+url.PathEscape(id)+"?done=saved", http.StatusSeeOther)
}

// createStore creates a store of the merchant.
func (c *Console) createStore(q *request) {
	ctx, cancel := q.ctx()
	defer cancel()
	id := q.r.PathValue("id")
	f := q.r.PostForm
	_, err := c.admin.CreateStore(ctx, &pb.CreateStoreRequest{Store: &pb.Store{
		MerchantId: id, StoreId: strings.TrimSpace(f.Get("store_id")), Name: strings.TrimSpace(f.Get("name")), TimeZone: strings.TrimSpace(f.Get("time_zone")),
	}})
	if err != nil {
		if ce := q.failed(err); ce != nil {
			q.w.WriteHeader(httpStatus(ce))
			c.showMerchant(q, &view{Err: ce.Message, Fields: ce.Fields, Form: f})
		}
		return
	}
	http.Redirect(q.w, q.r, "/merchants/"+url.PathEscape(id)+"?done=created", http.StatusSeeOther)
}

type tokensData struct {
	Tokens []*pb.AdminToken
	// Created is a token just created, whose secret is shown this once.
	Created *pb.CreateAdminTokenResponse
	Roles   []string
}

// tokens lists admin tokens (ADMIN only: AdminService refuses others).
func (c *Console) tokens(q *request) { c.showTokens(q, &view{}, nil) }

func (c *Console) showTokens(q *request, v *view, created *pb.CreateAdminTokenResponse) {
	ctx, cancel := q.ctx()
	defer cancel()
	resp, err := c.admin.ListAdminTokens(ctx, &pb.ListAdminTokensRequest{PageSize: 1000})
	if err != nil {
		q.mustNot(err)
		return
	}
	v.Title, v.D = "Tokens", &tokensData{Tokens: resp.GetAdminTokens(), Created: created, Roles: []string{"AUDITOR", "OPERATOR", "ADMIN"}}
	q.renderPage("tokens", v)
}

// createToken creates an admin token and shows its secret once.
func (c *Console) createToken(q *request) {
	ctx, cancel := q.ctx()
	defer cancel()
	f := q.r.PostForm
	req := &pb.CreateAdminTokenRequest{Name: strings.TrimSpace(f.Get("name")), Role: pb.Role(pb.Role_value["ROLE_"+f.Get("role")])}
	if d, err := time.ParseDuration(f.Get("ttl")); err == nil {
		req.Ttl = durationpb.New(d)
	} else if f.Get("ttl") != "" {
		q.w.WriteHeader(http.StatusBadRequest)
		c.showTokens(q, &view{Fields: map[string]string{"ttl": q.T("a duration, e.g. 720h")}, Form: f}, nil)
		return
	}
	resp, err := c.admin.CreateAdminToken(ctx, req)
	if err != nil {
		if ce := q.failed(err); ce != nil {
			q.w.WriteHeader(httpStatus(ce))
			c.showTokens(q, &view{Err: ce.Message, Fields: ce.Fields, Form: f}, nil)
		}
		return
	}
	c.showTokens(q, &view{Flash: q.T("Token created. Copy it now: it is not shown again.")}, resp)
}

// revokeToken revokes an admin token.
func (c *Console) revokeToken(q *request) {
	ctx, cancel := q.ctx()
	defer cancel()
	if _, err := c.admin.RevokeAdminToken(ctx, &pb.RevokeAdminTokenRequest{TokenId: q.r.PathValue("id")}); err != nil {
		if ce := q.failed(err); ce != nil {
			q.fail(httpStatus(ce), ce.Message)
		}
		return
	}
	http.Redirect(q.w, q.r, "/tokens?done=revoked", http.StatusSeeOther)
}

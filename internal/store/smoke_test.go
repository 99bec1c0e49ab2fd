package store_test

import (
	"context"
	"testing"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/store/storetest"
)

func TestSmoke(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	ws, _ := storetest.Workspace(t, s)
	up, err := s.UpsertContacts(ctx, ws.ID, []crm.ContactInput{
		{Phone: "+919876543210", ContactDetails: crm.ContactDetails{Name: crm.Some(ptr("Asha")), Attributes: crm.Some(map[string]any{"city": "Pune"})}},
		{Phone: "+919876543211"},
		{Phone: "+91 98765 43210", ContactDetails: crm.ContactDetails{Email: crm.Some(ptr("asha@example.com")), Attributes: crm.Some(map[string]any{"lang": "mr"})}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", up)
	seg, err := s.CreateSegment(ctx, ws.ID, crm.NewSegment{Name: "VIP", ContactIDs: []int64{up.Contacts[0].ID, up.Contacts[1].ID}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", seg)
	page, err := s.Segments(ctx, ws.ID, crm.SegmentQuery{Order: crm.DefaultSegmentOrder}, crm.PageArgs{})
	t.Logf("%+v %v", page, err)
	cpage, err := s.Contacts(ctx, ws.ID, crm.ContactQuery{Order: crm.ContactOrder{Field: crm.ContactsByName, Direction: crm.Asc}}, crm.PageArgs{First: ptr(1)})
	t.Logf("%+v %v", cpage, err)
	cpage, err = s.Contacts(ctx, ws.ID, crm.ContactQuery{Order: crm.ContactOrder{Field: crm.ContactsByName, Direction: crm.Asc}}, crm.PageArgs{First: ptr(1), After: &cpage.Cursors[0]})
	t.Logf("%+v %v", cpage, err)
	n, err := s.CountContacts(ctx, ws.ID, crm.ContactQuery{Segments: crm.MembershipFilter{Any: []int64{seg.ID}}})
	t.Logf("%v %v", n, err)
	segs, err := s.SegmentsOfContacts(ctx, ws.ID, []int64{up.Contacts[0].ID})
	t.Logf("%+v %v", segs, err)
	ch, err := s.AssignContactsToSegments(ctx, ws.ID, []int64{up.Contacts[0].ID, 999999}, []int64{seg.ID, 12345})
	t.Logf("%+v %v", ch, err)
	c, err := s.UpdateContact(ctx, ws.ID, up.Contacts[0].ID, crm.ContactPatch{Phone: crm.Some(ptr("+919876543212"))})
	t.Logf("%+v %v", c, err)
	d, err := s.DeleteContacts(ctx, ws.ID, []int64{up.Contacts[1].ID})
	t.Logf("%+v %v", d, err)
}

func ptr[T any](v T) *T { return &v }

// Package crm is the domain vocabulary of the segments service: workspaces, the
// contacts they keep, and the segments that group those contacts.
//
// Storage, transport and presentation live in other packages and translate to and
// from these types; it imports only the standard library, phone number parsing and
// globalid (the IDs the API shows for its objects).
package crm

import (
	"encoding/json"
	"time"

	"github.com/segments/segments/internal/globalid"
)

// Limits of the API, enforced before anything is written.
const (
	MaxPageSize        = 100     // largest first/last of a connection
	DefaultPageSize    = 20      // page size when neither first nor last is given
	MaxCountLimit      = 100_000 // largest limit of a connection's count
	MaxBulkContacts    = 1000    // contacts per bulk mutation
	MaxBulkSegments    = 100     // segments per bulk mutation
	MaxFilterSegments  = 100     // segment IDs per membership filter list
	MaxLookupIDs       = 100     // IDs per nodes(ids:) lookup
	MaxLookupPhones    = 100     // phones per contactsByPhone(phones:) lookup
	MaxSearchLength    = 200     // characters of a search term
	MaxSegmentName     = 100     // characters of a segment name
	MaxDescription     = 1000    // characters of a segment description
	MaxContactName     = 255     // characters of a contact name
	MaxEmail           = 320     // characters of an email address (RFC 3696)
	MaxPhone           = 16      // characters of a phone in E.164 form: + and up to 15 digits
	MaxAttributesBytes = 16 << 10
	// MaxAttributesDepth is how deep arrays and objects nest in a contact's
	// attributes, the attributes object itself not counted: {"a": [1]} is 1 level.
	MaxAttributesDepth = 10
	MaxWorkspaceName   = 200 // characters of a workspace's name
	MaxKeyName         = 200 // characters of an API key's name
)

// Caps of a bulk membership change's contactsMatching, checked in its transaction
// once the selection is known: the contacts it selects, and those times its segments
// (the memberships it may add or remove). They keep the change within the request's
// timeout (10 s by default) with room to spare. Assignments measured on the 2-core
// test machine under load (a workspace of 300,000 contacts): 100,000 contacts to 1
// segment 1.3 s, to 5 segments 3.3-4.5 s (500,000 memberships), 10,000 to 50 2.6 s,
// 5,000 to 100 3.6 s; removals about half that. So 1M memberships would take about
// 9 s, too close to the timeout.
const (
	MaxMatchedContacts    = 100_000
	MaxMatchedMemberships = 500_000
)

// MaxUpsertMemberships is the most segment IDs the entries of one upsert may name
// in all their AddToSegments, repeats included: the memberships it may add (each
// entry names at most MaxBulkSegments, as an assignment does). 1,000 contacts in 10
// segments each; it keeps the largest upsert's cost (1 point per 100 input items) at
// 120 points, far below the 1,000 of the cost limit, where 1,000 × 100 (an
// assignment's most) would cost 1,020, over it; and it keeps the upsert's
// transaction, which holds its contacts' row locks, to tens of milliseconds of
// inserts more (1,000 contacts × 3 segments: docs/performance.md).
const MaxUpsertMemberships = 10_000

// A Workspace is one tenant: a business with its own contacts, segments and API keys.
// Nothing in one workspace can see or reference anything in another.
type Workspace struct {
	ID        int64
	Name      string
	CreatedAt time.Time
}

// A Segment is a named group of contacts, such as "VIP Users". A contact can be in
// many segments.
type Segment struct {
	WorkspaceID int64
	ID          int64
	Name        string
	Description *string
	// ContactCount is the number of contacts in the segment, maintained by the store
	// in the same transaction as every membership change.
	ContactCount int64
	CreatedAt    time.Time
	// UpdatedAt moves when the name, the description or the membership changes.
	UpdatedAt time.Time
}

// A Contact is a person the business can message, identified by an E.164 phone
// number that is unique within the workspace.
type Contact struct {
	WorkspaceID int64
	ID          int64
	Phone       string
	Name        *string
	Email       *string
	// Attributes is a JSON object as PostgreSQL keeps it (jsonb), handed to the API
	// as it is: numbers exact (a float64 would round integers past 2^53), keys in
	// jsonb's order (shorter first).
	Attributes json.RawMessage
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// ContactIDs returns the IDs of contacts, in their order.
func ContactIDs(contacts []Contact) []int64 {
	ids := make([]int64, len(contacts))
	for i, c := range contacts {
		ids[i] = c.ID
	}
	return ids
}

// GlobalID is the workspace's ID as the API shows it: opaque, and telling its type.
func (w *Workspace) GlobalID() string { return globalid.Encode(globalid.Workspace, w.ID) }

// AppendGlobalID appends GlobalID to b, for a response written without the string.
func (w *Workspace) AppendGlobalID(b []byte) []byte {
	return globalid.Append(b, globalid.Workspace, w.ID)
}

// GlobalID is the segment's ID as the API shows it: opaque, and telling its type.
func (s *Segment) GlobalID() string { return globalid.Encode(globalid.Segment, s.ID) }

// AppendGlobalID appends GlobalID to b, for a response written without the string.
func (s *Segment) AppendGlobalID(b []byte) []byte {
	return globalid.Append(b, globalid.Segment, s.ID)
}

// GlobalID is the contact's ID as the API shows it: opaque, and telling its type.
func (c *Contact) GlobalID() string { return globalid.Encode(globalid.Contact, c.ID) }

// AppendGlobalID appends GlobalID to b, for a response written without the string.
func (c *Contact) AppendGlobalID(b []byte) []byte {
	return globalid.Append(b, globalid.Contact, c.ID)
}

// DeletedContact is a contact that deleteContacts deleted: its former ID and when,
// nothing else of it (a deletion deletes its personal data).
type DeletedContact struct {
	ID        int64
	DeletedAt time.Time
}

// ContactChange is a contact's latest change in the change feed
// (Query.contactChanges): the contact as it is now, or its deletion.
type ContactChange struct {
	ContactID int64
	// Contact is the contact at its latest state; nil when it was deleted.
	Contact *Contact
	// DeletedAt is when it was deleted; nil when it was not.
	DeletedAt *time.Time
}

// MembershipChange is an entry of the feed of memberships
// (Query.membershipChanges): contacts added to a segment, or removed from it, by one
// statement; or, in a sync from the start, a segment's current members.
type MembershipChange struct {
	SegmentID int64
	// Added: the contacts were added; else removed.
	Added bool
	// ContactIDs are 1 to MaxMembershipChangeContacts contacts, ascending.
	ContactIDs []int64
	// ChangedAt is the start of the transaction that made the change; nil for a
	// segment's current members listed by a sync from the start.
	ChangedAt *time.Time
}

// MaxMembershipChangeContacts is the most contacts a MembershipChange lists: the
// memberships' triggers record a statement's changes of a segment in rows of at
// most this many (migration 20261217000001).
const MaxMembershipChangeContacts = 1024

// SegmentGlobalID is the segment's ID as the API shows it (Segment.id), also when it
// was deleted.
func (c *MembershipChange) SegmentGlobalID() string {
	return globalid.Encode(globalid.Segment, c.SegmentID)
}

// ContactGlobalIDs are the contacts' IDs as the API shows them (Contact.id).
func (c *MembershipChange) ContactGlobalIDs() []string {
	out := make([]string, len(c.ContactIDs))
	for i, id := range c.ContactIDs {
		out[i] = globalid.Encode(globalid.Contact, id)
	}
	return out
}

// ContactGlobalID is the contact's ID as the API shows it (Contact.id), also when
// it was deleted.
func (c *ContactChange) ContactGlobalID() string {
	return globalid.Encode(globalid.Contact, c.ContactID)
}

// GlobalID is the deleted contact's former ID as the API showed it (Contact.id).
func (c *DeletedContact) GlobalID() string { return globalid.Encode(globalid.Contact, c.ID) }

// AppendGlobalID appends GlobalID to b, for a response written without the string.
func (c *DeletedContact) AppendGlobalID(b []byte) []byte {
	return globalid.Append(b, globalid.Contact, c.ID)
}

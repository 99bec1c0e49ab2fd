// The dashboard's Contacts table: each contact with the segments it is in, a checkbox
// per row, search and paging. The ticked rows' IDs are client state (React state), and
// "Add to Segment" sends them with AssignToSegmentsMutation (AssignToSegments.js).
import { graphql } from 'react-relay';

export const contactsTableQuery = graphql`
  query ContactsTableQuery($search: String, $filter: ContactFilter) {
    ...ContactsTable_query @arguments(search: $search, filter: $filter)
  }
`;

// The paged table; @refetchable for the search bar and the segment filter.
export const contactsTableFragment = graphql`
  fragment ContactsTable_query on Query
  @argumentDefinitions(
    count: { type: "Int", defaultValue: 50 }
    cursor: { type: "String" }
    search: { type: "String" }
    filter: { type: "ContactFilter" }
    orderBy: { type: "ContactOrder" }
  )
  @refetchable(queryName: "ContactsTablePaginationQuery") {
    contacts(first: $count, after: $cursor, search: $search, filter: $filter, orderBy: $orderBy)
      @connection(key: "ContactsTable_contacts", filters: ["search", "filter", "orderBy"]) {
      # "10,000+" beside the search bar: a common term is counted to the limit, not
      # through every match (README, "Rules clients can rely on").
      count(limit: 10000) {
        count
        precision
      }
      edges {
        node {
          id
          ...ContactsTable_row
        }
      }
    }
  }
`;

// One row: the checkbox is keyed by `id`; the segment chips read each segment's record,
// so renames and counts show without refetching the table. AssignToSegmentsMutation
// reads the ticked rows back with it, their chips updated in place by its answer.
export const contactRowFragment = graphql`
  fragment ContactsTable_row on Contact {
    id
    phone
    name
    email
    createdAt
    segments {
      id
      name
    }
  }
`;

// "Add to Segment" on the Contacts table: the ticked contacts into several segments at
// once, and the campaign audience count.
import { graphql } from 'react-relay';

// The segments to choose from in the "Add to Segment" dialog.
export const segmentPickerQuery = graphql`
  query AssignToSegmentsPickerQuery($search: String) {
    segments(first: 100, search: $search, orderBy: { field: NAME, direction: ASC }) {
      nodes {
        id
        name
        contactCount
      }
    }
  }
`;

// The payload's segments come back with their IDs and new contactCount: Relay merges
// them into the normalized Segment records, so the counts in the segment list, the picker
// and every contact's chips update without an updater or a refetch. The ticked contacts
// come back too, each with the segments it is in now, read with the table's row
// fragment: Relay merges them into the Contact records, so each row's chips update in
// place, with no second request. (By contactsMatching, a select-all, `contacts` is
// empty: refetch the table, ContactsTablePaginationQuery.)
export const assignMutation = graphql`
  mutation AssignToSegmentsMutation($input: AssignContactsToSegmentsInput!) {
    assignContactsToSegments(input: $input) {
      assignedCount
      segments {
        id
        contactCount
        updatedAt
      }
      contacts {
        id
        ...ContactsTable_row
      }
      userErrors {
        field
        message
        code
      }
    }
  }
`;

// The reverse, with the same cache behaviour.
export const removeMutation = graphql`
  mutation AssignToSegmentsRemoveMutation($input: RemoveContactsFromSegmentsInput!) {
    removeContactsFromSegments(input: $input) {
      removedCount
      segments {
        id
        contactCount
        updatedAt
      }
      contacts {
        id
        ...ContactsTable_row
      }
      userErrors {
        field
        message
        code
      }
    }
  }
`;

// The campaign audience: contacts in any of the chosen segments, minus those in the
// excluded ones, each counted once. totalCount needs no page, but the connection
// returns one, so ask for the smallest.
export const audienceCountQuery = graphql`
  query AssignToSegmentsAudienceQuery($any: [ID!], $none: [ID!]) {
    contacts(first: 1, filter: { segments: { any: $any, none: $none } }) {
      totalCount
    }
  }
`;

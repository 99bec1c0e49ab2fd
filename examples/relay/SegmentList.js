// The dashboard's segment list (issue #2): name, description, number of contacts and
// creation date, a search bar, and "load more" paging. make schema-check compiles every
// graphql tag in this folder with relay-compiler against schema.graphqls.
import { graphql } from 'react-relay';

// The screen's query: the first page, optionally searched.
export const segmentListQuery = graphql`
  query SegmentListQuery($search: String) {
    ...SegmentList_query @arguments(search: $search)
  }
`;

// The paged list. usePaginationFragment loads more with `after: endCursor`; typing in
// the search bar refetches the fragment with a new `search` (@refetchable), and the
// connection keeps one list per search and order (filters).
export const segmentListFragment = graphql`
  fragment SegmentList_query on Query
  @argumentDefinitions(
    count: { type: "Int", defaultValue: 20 }
    cursor: { type: "String" }
    search: { type: "String" }
    orderBy: { type: "SegmentOrder", defaultValue: { field: CREATED_AT, direction: DESC } }
  )
  @refetchable(queryName: "SegmentListPaginationQuery") {
    segments(first: $count, after: $cursor, search: $search, orderBy: $orderBy)
      @connection(key: "SegmentList_segments", filters: ["search", "orderBy"]) {
      __id
      totalCount
      edges {
        node {
          id
          ...SegmentList_row
        }
      }
    }
  }
`;

// One row. contactCount is read from the normalized Segment record, so a mutation that
// returns the segment with its new contactCount updates every row that shows it.
export const segmentRowFragment = graphql`
  fragment SegmentList_row on Segment {
    id
    name
    description
    contactCount
    createdAt
  }
`;

// "+ Add Segment": name, description and the chosen contacts. The new segment is put at
// the top of the list the user is looking at (@prependNode on the connection's __id).
export const createSegmentMutation = graphql`
  mutation SegmentListCreateMutation($input: CreateSegmentInput!, $connections: [ID!]!) {
    createSegment(input: $input) {
      segment @prependNode(connections: $connections, edgeTypeName: "SegmentEdge") {
        id
        ...SegmentList_row
      }
      userErrors {
        field
        message
        code
      }
    }
  }
`;

// Deleting a segment removes its record, and with it its row in every list.
export const deleteSegmentMutation = graphql`
  mutation SegmentListDeleteMutation($input: DeleteSegmentInput!) {
    deleteSegment(input: $input) {
      deletedSegmentId @deleteRecord
      userErrors {
        field
        message
        code
      }
    }
  }
`;

// Runs the dashboard snippets of docs/dashboard.md with the real Apollo Client and
// urql against the real server, and checks what that page says of their caches:
// after assignContactsToSegments, the segment counts on screen change with no
// refetch, and the ticked contacts' segments match the server's.
//
// Input: a JSON file (argv[2]) written by internal/server/docs_test.go:
//   { url, key, blocks: [{line, text}], ids: {segments: [...], contacts: [...]} }
// with the docs' IDs already mapped to the seeded workspace's. The snippets' React
// hooks are replaced by functions that do what the hooks do with the client the
// snippet built (watch a query, run a mutation), so that each snippet runs as written
// apart from its import lines. Exits 1 with the reasons when a check fails.
import { readFileSync } from "node:fs";
import * as apollo from "@apollo/client";
import { relayStylePagination } from "@apollo/client/utilities";
import * as urqlCore from "@urql/core";
import { cacheExchange } from "@urql/exchange-graphcache";
import { relayPagination } from "@urql/exchange-graphcache/extras";

const input = JSON.parse(readFileSync(process.argv[2], "utf8"));
const failures = [];
const fail = (msg) => failures.push(msg);

// Requests by operation name, to tell a cache update from a refetch.
const requests = [];
const realFetch = globalThis.fetch;
globalThis.fetch = (url, init) => {
  // urql sends queries as GET, with the parameters in the URL.
  const get = new URL(String(url)).searchParams.get("operationName");
  let name = get ?? "?";
  try {
    name = get ?? JSON.parse(init.body).operationName ?? "?";
  } catch {}
  requests.push(name);
  inflight++;
  return realFetch(url, init).finally(() => inflight--);
};
let inflight = 0;
const absolute = (uri) => (uri.startsWith("/") ? input.url + uri : uri);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// settle waits until the clients are done: what they fetch in the background
// (refetches) starts at once, so 300 ms without a request in flight means done.
async function settle() {
  const deadline = Date.now() + 30_000;
  let quiet = 0;
  while (quiet < 6 && Date.now() < deadline) {
    await sleep(50);
    quiet = inflight === 0 ? quiet + 1 : 0;
  }
}

// The server's truth, read without any cache.
async function server(query, variables) {
  const res = await realFetch(input.url + "/graphql", {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${input.key}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = await res.json();
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data;
}
const truth = async () => {
  const d = await server(
    `query($s: [ID!]!, $c: [ID!]!) {
      s: nodes(ids: $s) { ... on Segment { id name contactCount } }
      c: nodes(ids: $c) { ... on Contact { id segments { id name } } }
    }`,
    { s: input.ids.segments, c: input.ids.contacts },
  );
  return {
    counts: Object.fromEntries(d.s.map((s) => [s.id, s.contactCount])),
    names: Object.fromEntries(d.s.map((s) => [s.id, s.name])),
    segmentsOf: Object.fromEntries(d.c.map((c) => [c.id, c.segments.map((s) => s.name)])),
  };
};

// runBlocks runs the page's blocks as one async function, each block in its own scope:
// its import lines are dropped (env provides the names), and its top-level client and
// documents (const client, const SEGMENT_LIST) become vars, visible to later blocks.
async function runBlocks(blocks, env) {
  const code = blocks
    .map((b) => {
      const body = b.text
        .split("\n")
        .filter((l) => !l.startsWith("import "))
        .join("\n")
        .replace(/^const (client|[A-Z][A-Za-z0-9_]*) =/gm, "var $1 =");
      // A user acts on a screen once it has loaded: each block starts when the
      // requests of the previous ones are done.
      return `// docs/dashboard.md:${b.line}\nawait __settle();\n{\n${body}\n}`;
    })
    .join("\n");
  env = { ...env, __settle: settle };
  const names = Object.keys(env);
  const AsyncFunction = (async () => {}).constructor;
  await new AsyncFunction(...names, code)(...names.map((n) => env[n]));
}

const isApollo = (b) => b.text.includes(`from "@apollo/client`);
const isUrql = (b) => /from "(urql|@urql\/|gql\.tada)/.test(b.text);
// The blocks of each client: the Apollo ones run from the first that imports Apollo to
// the first that imports urql; the urql ones from there on, after the documents of the
// Apollo blocks, which the page says urql shares.
const first = input.blocks.findIndex(isApollo);
const split = input.blocks.findIndex(isUrql);
if (first < 0 || split < first) {
  console.error("the dashboard blocks of docs/dashboard.md were not found: an Apollo block, then a urql block");
  process.exit(1);
}
const apolloBlocks = input.blocks.slice(first, split);
const urqlBlocks = input.blocks.slice(split);
const [S1, S2] = input.ids.segments;
const [C1, C2] = input.ids.contacts;
// urql ticks other contacts: the Apollo part already added C1 and C2 to S1 and S2.
const [C8, C9] = input.ids.contacts.slice(7, 9);

// ---- Apollo Client -------------------------------------------------------------
{
  const watched = {}; // operation name -> latest data
  const env = { sessionToken: input.key, gql: apollo.gql, InMemoryCache: apollo.InMemoryCache, relayStylePagination };
  env.HttpLink = class extends apollo.HttpLink {
    constructor(o) {
      super({ ...o, uri: absolute(o.uri) });
    }
  };
  env.ApolloClient = class extends apollo.ApolloClient {
    constructor(o) {
      super(o);
      env.client = this;
    }
  };
  env.useQuery = (query, options = {}) => {
    const name = query.definitions[0].name.value;
    env.client.watchQuery({ query, ...options }).subscribe({
      next: (r) => r.data && (watched[name] = r.data),
      error: (e) => fail(`Apollo ${name}: ${e.message}`),
    });
    return { data: undefined, fetchMore: () => {} };
  };
  env.useMutation = (mutation, options = {}) => [
    (call = {}) => env.client.mutate({ mutation, ...options, ...call }),
  ];
  const run = runBlocks(
    apolloBlocks.map((b) => ({
      ...b,
      // A user ticks contacts in a table that has loaded: the table's query is done
      // before the assignment is sent (in the same block, the two raced, and a table
      // read after the assignment showed it without the cache's update). Remember
      // the counts just before the assignment, when it is sent.
      text: b.text
        .replace(/^await addToSegments\(/m, "await __settle(); globalThis.__before = await __truth(); await addToSegments(")
        // What the assignment's checks below look at, before "save this view as a
        // segment" refetches the table and the list.
        .replace(/^await saveView\(/m, "await __settle(); globalThis.__beforeSave = await __snapshot(); await saveView("),
    })),
    {
      ...env,
      __truth: truth,
      __snapshot: async () => ({ truth: await truth(), table: structuredClone(watched.ContactsTable), requests: requests.slice() }),
    },
  );
  await run.catch((e) => fail(`Apollo blocks: ${e.stack}`));
  const before = globalThis.__before;
  const saved = globalThis.__beforeSave ?? { truth: await truth(), requests: [] };
  await settle();
  const after = await truth();
  const list = watched.SegmentList?.segments.edges.map((e) => e.node) ?? [];
  const table = saved.table?.contacts.edges.map((e) => e.node) ?? [];
  if (!before) fail("Apollo: the page's block never sends addToSegments");
  if (!globalThis.__beforeSave) fail("Apollo: the page's block never sends saveView");
  if (list.length === 0) fail("Apollo: the segment list shows nothing");
  if (!list.some((s) => s.name === "Holi Buyers"))
    fail(`Apollo: the segment list does not show the created segment after its refetch: ${JSON.stringify(list)}`);
  for (const s of list) {
    if (after.counts[s.id] !== undefined && s.contactCount !== after.counts[s.id])
      fail(`Apollo: the list shows ${s.name} with ${s.contactCount} contacts, the server ${after.counts[s.id]}`);
  }
  if (before && before.counts[S2] === after.counts[S2])
    fail("Apollo: the assignment changed no count of the listed segments: the check proves nothing");
  const listFetches = saved.requests.filter((n) => n === "SegmentList").length;
  if (listFetches !== 2) fail(`Apollo: SegmentList fetched ${listFetches} times, want 2 (once, and once refetched after createSegment)`);
  for (const id of [C1, C2]) {
    const row = table.find((c) => c.id === id);
    const cached = row?.segments.map((s) => s.name);
    if (JSON.stringify(cached) !== JSON.stringify(saved.truth.segmentsOf[id]))
      fail(`Apollo: the table shows contact ${id} in ${JSON.stringify(cached)}, the server in ${JSON.stringify(saved.truth.segmentsOf[id])}`);
  }
  const tableFetches = saved.requests.filter((n) => n === "ContactsTable").length;
  if (tableFetches !== 1) fail(`Apollo: ContactsTable fetched ${tableFetches} times, want 1: the cache update, not a refetch, must show the change`);
  // "Save this view as a segment" (one createSegment with contactsMatching): the
  // list shows the new segment with its count, and the refetched table its contacts
  // in it, as the server has them.
  const vip = (await server(`{ segmentByName(name: "VIP Buyers") { id contactCount } }`)).segmentByName;
  const shown = list.find((s) => s.name === "VIP Buyers");
  if (!vip || vip.contactCount === 0 || shown?.contactCount !== vip.contactCount)
    fail(`Apollo: after saveView the list shows ${JSON.stringify(shown)}, the server ${JSON.stringify(vip)}`);
  for (const id of [C1, C2]) {
    const cached = watched.ContactsTable?.contacts.edges.find((e) => e.node.id === id)?.node.segments.map((s) => s.name);
    if (!cached?.includes("VIP Buyers") || JSON.stringify(cached) !== JSON.stringify(after.segmentsOf[id]))
      fail(`Apollo: after saveView the table shows contact ${id} in ${JSON.stringify(cached)}, the server in ${JSON.stringify(after.segmentsOf[id])}`);
  }
  if (typeof watched.AudienceSize?.contacts.totalCount !== "number") fail("Apollo: no audience size");
  console.log(`apollo: requests ${JSON.stringify(requests)}`);
  env.client.stop();
}

// ---- urql with Graphcache -------------------------------------------------------
{
  requests.length = 0;
  const watched = {};
  const env = { sessionToken: input.key, fetchExchange: urqlCore.fetchExchange, cacheExchange, relayPagination };
  env.gql = env.graphql = urqlCore.gql;
  env.Client = class extends urqlCore.Client {
    constructor(o) {
      super({ ...o, url: absolute(o.url) });
      env.client = this;
    }
  };
  const watch = (query, variables, context) => {
    const name = query.definitions.find((d) => d.kind === "OperationDefinition").name.value;
    env.client.query(query, variables, context).subscribe((r) => {
      if (r.error) fail(`urql ${name}: ${r.error.message}`);
      else if (r.data) watched[name] = r.data;
    });
  };
  env.useQuery = ({ query, variables, ...context }) => {
    watch(query, variables, context);
    return [{ data: undefined }];
  };
  env.useMutation = (mutation) => [{}, (variables) => env.client.mutation(mutation, variables).toPromise()];
  // The documents of the Apollo blocks, then the urql blocks.
  const documents = apolloBlocks
    .flatMap((b) => b.text.match(/^const [A-Z_]+ = gql`[^`]*`;/gm) ?? [])
    .join("\n");
  await runBlocks([{ line: 0, text: documents }, ...urqlBlocks], env).catch((e) => fail(`urql blocks: ${e.stack}`));
  // The contacts table too, as the dashboard would show it next to the list.
  const tableDoc = apolloBlocks.map((b) => b.text.match(/const CONTACTS_TABLE = gql`([^`]*)`/)?.[1]).find(Boolean);
  const assignDoc = apolloBlocks.map((b) => b.text.match(/const ADD_TO_SEGMENTS = gql`([^`]*)`/)?.[1]).find(Boolean);
  watch(urqlCore.gql(tableDoc), { first: 50 });
  await settle();
  const before = await truth();
  const r = await env.client.mutation(urqlCore.gql(assignDoc), { input: { contactIds: [C8, C9], segmentIds: [S1, S2] } }).toPromise();
  if (r.error || r.data.assignContactsToSegments.userErrors.length) fail(`urql: the assignment failed: ${JSON.stringify(r)}`);
  await settle();
  const after = await truth();
  if (before.counts[S2] === after.counts[S2]) fail("urql: the assignment changed no count: the check proves nothing");
  const list = watched.SegmentList?.segments.edges.map((e) => e.node) ?? [];
  if (list.length === 0) fail("urql: the segment list shows nothing");
  for (const s of list) {
    if (after.counts[s.id] !== undefined && s.contactCount !== after.counts[s.id])
      fail(`urql: the list shows ${s.name} with ${s.contactCount} contacts, the server ${after.counts[s.id]}`);
  }
  const listFetches = requests.filter((n) => n === "SegmentList").length;
  if (listFetches !== 1) fail(`urql: SegmentList fetched ${listFetches} times, want 1: counts must update from the mutation's answer`);
  const table = watched.ContactsTable?.contacts.edges.map((e) => e.node) ?? [];
  for (const id of [C8, C9]) {
    const cached = table.find((c) => c.id === id)?.segments.map((s) => s.name);
    if (JSON.stringify(cached) !== JSON.stringify(after.segmentsOf[id]))
      fail(`urql: the table shows contact ${id} in ${JSON.stringify(cached)}, the server in ${JSON.stringify(after.segmentsOf[id])}`);
  }
  if (typeof watched.AudienceSize?.contacts.totalCount !== "number") fail("urql: no audience size");

  // "Select all matching": the same mutation with contactsMatching, which names no
  // contact, so its answer's contacts are empty, and the table must show what the
  // server holds once it settles (the page's update refetches it).
  const S3 = input.ids.segments[2];
  if (!S3) fail("the seeded workspace has no third segment for the matching assignment");
  const m = await env.client
    .mutation(urqlCore.gql(assignDoc), { input: { contactsMatching: { filter: { segments: { any: [S1] } } }, segmentIds: [S3] } })
    .toPromise();
  if (m.error || m.data.assignContactsToSegments.userErrors.length) fail(`urql: the matching assignment failed: ${m.error?.stack ?? JSON.stringify(m)}`);
  await settle();
  const matched = await truth();
  if (matched.counts[S3] === after.counts[S3]) fail("urql: the matching assignment changed no count: the check proves nothing");
  for (const c of watched.ContactsTable?.contacts.edges.map((e) => e.node) ?? []) {
    const cached = c.segments.map((s) => s.name);
    if (matched.segmentsOf[c.id] && JSON.stringify(cached) !== JSON.stringify(matched.segmentsOf[c.id]))
      fail(`urql: after the matching assignment the table shows contact ${c.id} in ${JSON.stringify(cached)}, the server in ${JSON.stringify(matched.segmentsOf[c.id])}`);
  }
  console.log(`urql: requests ${JSON.stringify(requests)}`);
}

if (failures.length > 0) {
  console.error(failures.join("\n"));
  process.exit(1);
}
console.log("ok");
process.exit(0);

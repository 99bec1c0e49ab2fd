// PostGraphile 5, the peer that `make bench` (cmd/segbench) measures our API against.
// It serves the same tables of the same database (schema public) with the same
// indexes, plus the bulk-assignment function of schema segbench (created by segbench),
// since PostGraphile has no bulk mutation of its own.
//
//   DATABASE_URL=postgres://... PORT=5678 POOL=8 node server.mjs
//
// Many-to-many fields come from @graphile-contrib/pg-many-to-many, filters (search,
// membership conditions) from postgraphile-plugin-connection-filter.
import { createServer } from "node:http";
import { postgraphile } from "postgraphile";
import { grafserv } from "postgraphile/grafserv/node";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { makePgService } from "postgraphile/adaptors/pg";
import { PgManyToManyPreset } from "@graphile-contrib/pg-many-to-many";
import { PostGraphileConnectionFilterPreset } from "postgraphile-plugin-connection-filter";
import { jsonPgSmartTags } from "postgraphile/utils";

const port = Number(process.env.PORT || 5678);

// PostGraphile reads relations from foreign keys. Since our migration
// 20261201000001_membership_references, triggers check the memberships' references once
// per statement instead of two foreign keys once per row: the same two keys, declared
// here as smart tags, give PostGraphile the relations it had (and pg-many-to-many its
// Contact.segments and Segment.contacts), with the tables left as they are.
const membershipKeys = jsonPgSmartTags({
  version: 1,
  config: {
    class: {
      memberships: {
        tags: {
          foreignKey: [
            "(workspace_id, segment_id) references segments (workspace_id, id)",
            "(workspace_id, contact_id) references contacts (workspace_id, id)",
          ],
        },
      },
    },
  },
});

const preset = {
  extends: [PostGraphileAmberPreset, PgManyToManyPreset, PostGraphileConnectionFilterPreset],
  plugins: [membershipKeys],
  pgServices: [
    makePgService({
      connectionString: process.env.DATABASE_URL,
      schemas: ["public", "segbench"],
      // No statement timeout: the database role may carry our server's (15 s), which is
      // our product's setting, not PostGraphile's (W7 runs one 1M-row statement).
      // The planner's settings are our server's role's (store.Options SerialPlans and
      // NoJIT), so that the contenders' plans differ by their SQL alone: connected as
      // the owner with PostgreSQL's defaults, its W8 count launched two parallel
      // workers.
      poolConfig: {
        max: Number(process.env.POOL || 8),
        options: "-c statement_timeout=0 -c max_parallel_workers_per_gather=0 -c jit=off",
      },
    }),
  ],
  schema: {
    connectionFilterRelations: true,
    connectionFilterComputedColumns: true,
  },
  grafserv: {
    port,
    graphqlPath: "/graphql",
    graphiql: false,
    watch: false,
    // Our server's default cap on a request body (limits.Defaults.MaxBodyBytes), where
    // grafserv's is 100,000 bytes: W7's request of 10,000 contact IDs takes 90 kB
    // while the IDs have six digits and 100 kB with seven, as they do once the
    // benchmark's database has held an earlier dataset (413 "Too much data").
    maxRequestLength: 256 << 10,
  },
  grafast: { explain: false },
};

const pgl = postgraphile(preset);
const serv = pgl.createServ(grafserv);
const server = createServer();
server.keepAliveTimeout = 120_000;
serv.addTo(server).then(() => {
  server.listen(port, "127.0.0.1", () => console.log(`PostGraphile listening on http://127.0.0.1:${port}/graphql`));
}).catch((e) => { console.error(e); process.exit(1); });
process.on("SIGTERM", () => { server.close(); pgl.release().then(() => process.exit(0)); });

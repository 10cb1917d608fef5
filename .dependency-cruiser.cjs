/**
 * The dependency rules of the layout (issue 13, rule 6): `npm run check:deps` fails on any of them.
 * Paths are relative to the repository root; each rule's comment says why it exists (shown by
 * `npx depcruise -T err-long ...`).
 *
 * Tests, bench, examples and scripts may import anything; they are cruised too, so that a cycle
 * through them is caught, and src/ or adapters/ importing them is.
 * The rule that index files hold named exports only (no `export *`) is a lint rule: see biome.jsonc.
 */

/** The top-level folders of src/, each entered through its index.ts from outside. */
const FOLDERS = "(protocol|bus|security|gateway|executor|agent|metrics|tracing|util|cli|nostr)";

/** @type {import("dependency-cruiser").IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "no-cycles",
      comment: "Modules in a cycle cannot be read, tested or moved one without the other (type-only imports count).",
      severity: "error",
      from: {},
      to: { circular: true },
    },
    {
      name: "no-cycles-between-folders",
      comment: "Nor may two top-level folders need each other through files that form no cycle (bus <-> security was one).",
      severity: "error",
      // Folder by folder; a cycle among one top-level folder's own subfolders is left to no-cycles.
      scope: "folder",
      from: { path: "^(src/[^/]+|adapters/[^/]+)" },
      to: { circular: true, pathNot: "^$1(/|$)" },
    },
    {
      name: "protocol-is-pure",
      comment: "The wire is shared by every side and does no I/O: src/protocol imports only itself, zod and node:crypto.",
      severity: "error",
      from: { path: "^src/protocol/" },
      to: { pathNot: ["^src/protocol/", "(^|/)node_modules/zod/|^zod$", "^(node:)?crypto$"] },
    },
    {
      name: "nats-only-in-bus",
      comment: "The bus is the one way to NATS: only src/bus imports @nats-io/* (the rest sees no raw connection).",
      severity: "error",
      from: { path: "^(src|adapters)/", pathNot: "^src/bus/" },
      to: { path: "(^|/)node_modules/@nats-io/|^@nats-io/", pathNot: "(^|/)node_modules/@nats-io/nkeys/|^@nats-io/nkeys" },
    },
    {
      name: "nkeys-only-in-bus-or-security",
      comment: "@nats-io/nkeys is crypto (keys, signatures), not a connection: src/security may use it too.",
      severity: "error",
      from: { path: "^(src|adapters)/", pathNot: "^src/(bus|security)/" },
      to: { path: "(^|/)node_modules/@nats-io/nkeys/|^@nats-io/nkeys" },
    },
    {
      name: "security-does-not-import-bus",
      comment: "Security plugs into the bus as its envelope codec; importing the bus back would tie the two together.",
      severity: "error",
      from: { path: "^src/security/" },
      to: { path: "^src/bus/" },
    },
    {
      name: "adapters-only-from-cli",
      comment: "The core does not know its adapters: only src/cli, the composition root, wires them in.",
      severity: "error",
      from: { path: "^src/", pathNot: "^src/cli/" },
      to: { path: "^adapters/" },
    },
    {
      name: "inbound-and-outbound-apart",
      comment: "Inbound (clients -> gateway) and outbound (executor -> upstream) adapters share only src/.",
      severity: "error",
      from: { path: "^adapters/(inbound|outbound)/" },
      to: { path: "^adapters/(inbound|outbound)/", pathNot: "^adapters/$1/" },
    },
    {
      name: "enter-folders-by-index",
      comment: "A folder of src/ is entered through its index.ts, which names what it offers; inside it, imports are free.",
      severity: "error",
      from: { path: `^src/${FOLDERS}/` },
      to: { path: `^src/${FOLDERS}/`, pathNot: ["^src/$1/", `^src/${FOLDERS}/index\\.ts$`] },
    },
    {
      name: "adapters-enter-src-by-index",
      comment: "Adapters, and the package root src/index.ts, see src/ through each folder's index.ts, as users do.",
      severity: "error",
      from: { path: ["^adapters/", "^src/[^/]+$"] },
      to: { path: `^src/${FOLDERS}/`, pathNot: `^src/${FOLDERS}/index\\.ts$` },
    },
    {
      name: "no-tests-in-product",
      comment: "Tests, bench, examples and scripts are not shipped: src/ and adapters/ never import them.",
      severity: "error",
      from: { path: "^(src|adapters)/" },
      to: { path: "^(test|bench|examples|scripts)/" },
    },
  ],
  options: {
    // The sources, not the build that mirrors them.
    exclude: { path: "^dist/" },
    // Packages are leaves: their own imports are not checked.
    doNotFollow: { path: "node_modules" },
    // Type-only imports are dependencies too (the bus <-> security cycle of issue 13 was one of types).
    tsPreCompilationDeps: true,
    // Resolves the `.js` specifiers of NodeNext to the `.ts` sources.
    tsConfig: { fileName: "tsconfig.json" },
    // Packages that publish only an `exports` map (@nats-io/jetstream, @nats-io/kv, ...) resolve by it, as in Node.
    enhancedResolveOptions: { exportsFields: ["exports"], conditionNames: ["import", "require", "node", "default", "types"] },
  },
};

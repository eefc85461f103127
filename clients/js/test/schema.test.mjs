// The client's types are generated from chatgate's openapi.yaml (`npm run generate`); this fails
// when they drift apart, so a change to the contract cannot ship without the client's types.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL("..", import.meta.url));

test("src/schema.ts is what openapi-typescript makes of openapi.yaml", () => {
  const out = join(mkdtempSync(join(tmpdir(), "chatgate-schema-")), "schema.ts");
  const cli = join(here, "node_modules", "openapi-typescript", "bin", "cli.js");
  execFileSync(process.execPath, [cli, join(here, "..", "..", "openapi.yaml"), "--output", out], { stdio: "pipe" });
  const committed = readFileSync(join(here, "src", "schema.ts"), "utf8");
  assert.ok(readFileSync(out, "utf8") === committed, "src/schema.ts is stale: run `npm run generate` in clients/js");
});

// The package as published: entry points, conditions, types and dependencies.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
  name: string;
  type: string;
  exports: Record<string, unknown>;
  dependencies: Record<string, string>;
};

test("ESM with entries for node and browser, each with type declarations", () => {
  assert.equal(pkg.name, "@sigil-wallet/sdk");
  assert.equal(pkg.type, "module");
  const dot = pkg.exports["."] as Record<string, Record<string, string>>;
  assert.equal(dot.node?.default, "./dist/node.js");
  assert.equal(dot.browser?.default, "./dist/browser.js");
  const targets = (v: unknown): string[] =>
    typeof v === "string" ? [v] : Object.values(v as Record<string, unknown>).flatMap(targets);
  for (const f of targets(pkg.exports)) assert.ok(existsSync(join(root, f)), `${f} is built`);
  assert.ok(existsSync(join(root, "dist", "gen", "sigil", "wallet", "v1", "wallet_pb.js")), "generated code is part of the build");
  assert.ok(existsSync(join(root, "dist", "gen", "sigil", "wallet", "v1", "wallet_pb.d.ts")));
});

test("runtime dependencies are Connect and protobuf-es only", () => {
  assert.deepEqual(Object.keys(pkg.dependencies).sort(), [
    "@bufbuild/protobuf",
    "@connectrpc/connect",
    "@connectrpc/connect-node",
    "@connectrpc/connect-web",
  ]);
});

test("the package name resolves to the node entry in Node, and the browser entry has no Node imports", async () => {
  const require = createRequire(import.meta.url);
  const resolved = import.meta.resolve("@sigil-wallet/sdk");
  assert.ok(resolved.endsWith("/dist/node.js"), resolved);
  const node = await import("@sigil-wallet/sdk");
  const web = await import("@sigil-wallet/sdk/web");
  assert.equal(typeof node.createSigilClient, "function");
  assert.equal(typeof web.createSigilClient, "function");
  assert.equal(typeof node.WalletService, "object");
  assert.equal(node.WalletService.typeName, "sigil.wallet.v1.WalletService");
  const browserJs = readFileSync(join(root, "dist", "browser.js"), "utf8");
  assert.doesNotMatch(browserJs, /connect-node|from "node:/);
  assert.ok(require.resolve("@connectrpc/connect-web"));
});

test("the browser entry builds a working client (connect-web over fetch)", async () => {
  const web = await import("@sigil-wallet/sdk/web");
  const c = web.createSigilClient({ baseUrl: "http://127.0.0.1:9", token: "t" });
  await assert.rejects(c.getWallet("wal_00000000000000000000000000", { timeoutMs: 5_000 }), (err: Error) => {
    assert.ok(web.isUnavailable(err), err.message);
    assert.match(err.message, /cannot reach the Sigil API at http:\/\/127\.0\.0\.1:9/);
    return true;
  });
});

// Bad input and error codes: each case gives a clear error, fast, never a hang.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  Code,
  ConnectError,
  createSigilClient,
  errorCode,
  errorReason,
  ErrorReason,
  isAlreadyExists,
  isCanceled,
  isDeadlineExceeded,
  isFailedPrecondition,
  isInvalidArgument,
  isNotFound,
  isPermissionDenied,
  isUnauthenticated,
  isUnavailable,
  WalletStatus,
} from "@sigil-wallet/sdk";
import { client, fixture, randomBytes, uniq } from "./support.js";

const sigil = client();
const missingWallet = "wal_00000000000000000000000000";
const missingSignature = "sig_00000000000000000000000000";

/** Asserts that fn rejects within ms, and returns the error. */
async function rejectsWithin(fn: () => Promise<unknown>, ms: number): Promise<ConnectError> {
  const started = Date.now();
  let caught: unknown;
  try {
    await fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught !== undefined, "expected an error");
  assert.ok(Date.now() - started < ms, `took ${Date.now() - started} ms, more than ${ms}`);
  assert.ok(caught instanceof ConnectError, `expected a ConnectError, got ${String(caught)}`);
  return caught;
}

describe("client configuration", () => {
  test("a missing token is refused at once, saying where to get one", () => {
    assert.throws(() => createSigilClient({ baseUrl: fixture.apiUrl, token: "" }), /token is required.*sigil token create/);
    assert.throws(
      () => createSigilClient({ baseUrl: fixture.apiUrl } as unknown as Parameters<typeof createSigilClient>[0]),
      /token is required/,
    );
  });

  test("a malformed base URL is refused at once", () => {
    assert.throws(() => createSigilClient({ baseUrl: "", token: "t" }), /baseUrl is required/);
    assert.throws(() => createSigilClient({ baseUrl: "127.0.0.1:8080", token: "t" }), /http:\/\/ or https:\/\//);
    assert.throws(() => createSigilClient({ baseUrl: "not a url", token: "t" }), /must start with http/);
    assert.throws(() => createSigilClient({ baseUrl: "http://", token: "t" }), /not an absolute URL/);
    assert.throws(() => createSigilClient({ baseUrl: "ftp://h", token: "t" }), /must start with http:\/\/ or https:\/\//);
    assert.throws(() => createSigilClient({ baseUrl: "http://h/?x=1", token: "t" }), /query or fragment/);
    assert.throws(() => createSigilClient({ baseUrl: fixture.apiUrl, token: "t", timeoutMs: -1 }), /timeoutMs/);
  });

  test("a server that is down gives Unavailable naming the URL", async () => {
    const down = createSigilClient({ baseUrl: "http://127.0.0.1:9", token: "sgl_x" });
    const err = await rejectsWithin(() => down.getWallet(missingWallet), 10_000);
    assert.ok(isUnavailable(err), `code ${Code[err.code]}: ${err.message}`);
    assert.match(err.message, /cannot reach the Sigil API at http:\/\/127\.0\.0\.1:9/);
  });

  test("a wrong base URL (not the API port) is reported as such", async () => {
    const wrong = createSigilClient({ baseUrl: `${fixture.apiUrl}/not-sigil`, token: fixture.token });
    const err = await rejectsWithin(() => wrong.getWallet(missingWallet), 10_000);
    assert.equal(err.code, Code.Unimplemented, err.message);
    assert.match(err.message, /does not serve sigil\.wallet\.v1\.WalletService.*is baseUrl the Sigil API port/);
  });

  test("a token the server does not know gives Unauthenticated", async () => {
    const err = await rejectsWithin(() => client("sgl_notarealtoken").getWallet(missingWallet), 10_000);
    assert.ok(isUnauthenticated(err), err.message);
  });

  test("a token function is called for every request", async () => {
    let calls = 0;
    const c = createSigilClient({ baseUrl: fixture.apiUrl, token: () => (calls++, fixture.token) });
    await c.listWallets({ pageSize: 1 }).toArray(1);
    await c.listWallets({ pageSize: 1 }).toArray(1);
    assert.equal(calls, 2);
  });

  test("a token without the scope gives PermissionDenied", async (t) => {
    if (!fixture.readToken) {
      t.skip("the harness could not create a wallets:read token for this server");
      return;
    }
    const reader = client(fixture.readToken);
    await reader.listWallets({ pageSize: 1 }).toArray(1); // reading is allowed
    const err = await rejectsWithin(() => reader.createWallet({ name: "must-not-exist" }), 10_000);
    assert.ok(isPermissionDenied(err), `code ${Code[err.code]}: ${err.message}`);
  });
});

describe("aborts and timeouts", () => {
  test("an aborted call fails with Canceled", async () => {
    const ac = new AbortController();
    ac.abort(new Error("user left the page"));
    const err = await rejectsWithin(() => sigil.getWallet(missingWallet, { signal: ac.signal }), 5_000);
    assert.ok(isCanceled(err), err.message);
    assert.match(err.message, /GetWallet aborted by the caller: user left the page/);
  });

  test("a call past its per-call timeout fails with DeadlineExceeded", async () => {
    const err = await rejectsWithin(() => sigil.listWallets({ timeoutMs: 1 }).toArray(), 5_000);
    assert.ok(isDeadlineExceeded(err), err.message);
  });

  test("a client-wide default timeout applies to every call", async () => {
    const hasty = createSigilClient({ baseUrl: fixture.apiUrl, token: fixture.token, timeoutMs: 1 });
    const err = await rejectsWithin(() => hasty.getWallet(missingWallet), 5_000);
    assert.ok(isDeadlineExceeded(err), err.message);
    // ...and a call can override it.
    const err2 = await rejectsWithin(() => hasty.getWallet(missingWallet, { timeoutMs: 10_000 }), 10_000);
    assert.ok(isNotFound(err2), err2.message);
  });
});

describe("server error codes", () => {
  test("unknown wallet and signature give NotFound", async () => {
    assert.ok(isNotFound(await rejectsWithin(() => sigil.getWallet(missingWallet), 10_000)));
    assert.ok(isNotFound(await rejectsWithin(() => sigil.getSignature(missingSignature), 10_000)));
    assert.ok(isNotFound(await rejectsWithin(() => sigil.signHash(missingWallet, randomBytes(32)), 10_000)));
  });

  test("errors carry the server's machine-readable reason", async () => {
    const missing = await rejectsWithin(() => sigil.getWallet(missingWallet), 10_000);
    assert.equal(errorReason(missing), ErrorReason.NOT_FOUND, missing.message);
    const malformed = await rejectsWithin(() => sigil.getWallet("not-a-wallet-id"), 10_000);
    assert.equal(errorReason(malformed), ErrorReason.INVALID_ARGUMENT, malformed.message);
    const unknownToken = await rejectsWithin(() => client("sgl_notarealtoken").getWallet(missingWallet), 10_000);
    assert.equal(errorReason(unknownToken), ErrorReason.UNAUTHENTICATED, unknownToken.message);
    // Errors the SDK raises itself carry none.
    const local = await rejectsWithin(() => sigil.signHash(missingWallet, randomBytes(31)), 1_000);
    assert.equal(errorReason(local), ErrorReason.UNSPECIFIED);
    assert.equal(errorReason(new Error("plain")), ErrorReason.UNSPECIFIED);
  });

  test("malformed requests give InvalidArgument with the server's message", async () => {
    const err = await rejectsWithin(() => sigil.getWallet("not-a-wallet-id"), 10_000);
    assert.ok(isInvalidArgument(err));
    assert.match(err.rawMessage, /id/);
    // The SDK checks a hash's length before sending it...
    const short = await rejectsWithin(() => sigil.signHash(missingWallet, randomBytes(31)), 1_000);
    assert.ok(isInvalidArgument(short));
    assert.match(short.message, /32 bytes, got 31/);
    // ...and the server checks it too.
    const raw = await rejectsWithin(
      () => sigil.service.createSignature({ walletId: missingWallet, payload: { case: "hash", value: randomBytes(31) } }),
      10_000,
    );
    assert.ok(isInvalidArgument(raw), raw.message);
    assert.ok(isInvalidArgument(await rejectsWithin(() => sigil.signMessage(missingWallet, ""), 1_000)));
    assert.ok(isInvalidArgument(await rejectsWithin(() => sigil.createSignature({ walletId: missingWallet }), 1_000)));
    assert.ok(
      isInvalidArgument(
        await rejectsWithin(() => sigil.createSignature({ walletId: missingWallet, hash: randomBytes(32), message: "both" }), 1_000),
      ),
    );
    assert.ok(isInvalidArgument(await rejectsWithin(() => sigil.createWallet({ externalId: "spaces are not allowed" }), 10_000)));
    assert.ok(isInvalidArgument(await rejectsWithin(() => sigil.listWallets({ pageSize: 5000 }).toArray(), 10_000)));
    assert.equal(errorCode(new Error("plain")), Code.Unknown);
  });

  test("external ids: same request, same wallet; different request, AlreadyExists; signing a CREATING wallet, FailedPrecondition", async () => {
    const externalId = `sdk-test-${uniq()}`;
    // An MPC wallet stays CREATING for tens of seconds, long enough to try signing with it.
    const first = await sigil.createWallet({ externalId, name: "idempotent", backend: "mpc" });
    assert.match(first.id, /^wal_[0-9a-z]{26}$/);
    assert.equal(first.externalId, externalId);
    const again = await sigil.createWallet({ externalId, name: "idempotent", backend: "mpc" });
    assert.equal(again.id, first.id);
    const conflict = await rejectsWithin(() => sigil.createWallet({ externalId, name: "another body", backend: "mpc" }), 10_000);
    assert.ok(isAlreadyExists(conflict), conflict.message);
    assert.equal(errorReason(conflict), ErrorReason.IDEMPOTENCY_CONFLICT);

    const now = await sigil.getWallet(first.id);
    if (now.status === WalletStatus.CREATING) {
      const err = await rejectsWithin(() => sigil.signMessage(first.id, "too early"), 10_000);
      assert.ok(isFailedPrecondition(err), err.message);
      assert.match(err.rawMessage, /not active/);
      assert.equal(errorReason(err), ErrorReason.WALLET_NOT_ACTIVE);
    }
  });
});

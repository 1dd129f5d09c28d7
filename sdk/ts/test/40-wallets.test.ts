// Wallet creation on each backend, reading and listing with pagination.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { computeAddress, getAddress } from "ethers";
import { Backend, isCanceled, isDeadlineExceeded, toHex, WalletStatus, type Wallet } from "@sigil-wallet/sdk";
import { activeWallet, client, fixture, uniq, type BackendName } from "./support.js";

const sigil = client();

function assertActiveWallet(w: Wallet, backend: Backend): void {
  assert.equal(w.status, WalletStatus.ACTIVE);
  assert.equal(w.backend, backend);
  assert.equal(w.failureReason, "");
  assert.equal(w.publicKey.length, 33, "SEC1 compressed public key");
  assert.ok(w.publicKey[0] === 2 || w.publicKey[0] === 3);
  // The address the server derived is the one ethers derives from the key.
  const address = w.addresses?.ethereum ?? "";
  assert.equal(address, computeAddress(toHex(w.publicKey)));
  assert.equal(address, getAddress(address), "EIP-55 checksummed");
  assert.match(w.addresses?.bitcoinP2wpkh ?? "", /^bc1q[02-9ac-hj-np-z]{38}$/);
}

describe("wallet creation", () => {
  test("HSM: createWalletAndWait reports progress and returns an ACTIVE wallet", async (t) => {
    if (!activeWallet(t, "hsm")) return;
    const seen: WalletStatus[] = [];
    const name = `sdk-test-hsm-${uniq()}`;
    const w = await sigil.createWalletAndWait({
      name,
      backend: "hsm",
      timeoutMs: 60_000,
      onProgress: ({ wallet, elapsedMs }) => {
        assert.ok(elapsedMs >= 0);
        seen.push(wallet.status);
      },
    });
    assertActiveWallet(w, Backend.HSM);
    assert.equal(w.name, name);
    assert.equal(w.mpcGroup, undefined);
    assert.ok(seen.length >= 1 && seen.at(-1) === WalletStatus.ACTIVE, `progress: ${seen.map((s) => WalletStatus[s]).join(",")}`);
  });

  test("MPC: the run's shared wallet went CREATING -> ACTIVE and is held 2-of-3", async (t) => {
    const id = activeWallet(t, "mpc");
    if (!id) return;
    assert.deepEqual(fixture.backends.mpc?.states?.slice(0, 1), ["CREATING"]);
    const w = await sigil.getWallet(id);
    assertActiveWallet(w, Backend.MPC);
    assert.ok(w.mpcGroup, "an MPC wallet names its signer group");
    assert.ok(w.mpcGroup.threshold >= 1 && w.mpcGroup.threshold <= w.mpcGroup.signers.length);
    assert.ok(w.createTime && w.updateTime);
  });

  test("createWallet returns a CREATING wallet; waitForWallet times out or aborts naming its state", async () => {
    // An MPC wallet: its key generation takes long enough to see CREATING.
    // (One keygen per test run is costly on small machines: this file runs
    // after the signing and browser tests, and reuses this wallet.)
    const name = `sdk-test-creating-${uniq()}`;
    const w = await sigil.createWallet({ name, backend: Backend.MPC });
    assert.match(w.id, /^wal_[0-9a-z]{26}$/);
    assert.equal(w.name, name);
    assert.equal(w.backend, Backend.MPC);
    assert.equal(w.status, WalletStatus.CREATING);
    assert.equal(w.publicKey.length, 0);
    const got = await sigil.getWallet(w.id);
    assert.equal(got.id, w.id);
    assert.equal(got.name, name);

    await assert.rejects(sigil.waitForWallet(w.id, { timeoutMs: 300 }), (err: Error) => {
      assert.ok(isDeadlineExceeded(err));
      assert.match(err.message, /gave up after 300 ms: wallet wal_\w+ is still CREATING/);
      return true;
    });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 200);
    await assert.rejects(sigil.waitForWallet(w.id, { signal: ac.signal }), (err: Error) => {
      assert.ok(isCanceled(err));
      assert.match(err.message, /stopped waiting, wallet wal_\w+ is still CREATING/);
      return true;
    });
  });
});

describe("listing wallets", () => {
  test("pages of one wallet, iterated lazily, give every wallet once, oldest first", async () => {
    // At least three wallets exist: the tests above and other files create some.
    let all = await sigil.listWallets({ pageSize: 1000 }).toArray();
    while (all.length < 3) {
      await sigil.createWallet({ name: `sdk-test-page-${uniq()}`, backend: fixture.backends.hsm?.walletId ? "hsm" : undefined });
      all = await sigil.listWallets({ pageSize: 1000 }).toArray();
    }
    let pages = 0;
    const tokens: string[] = [];
    for await (const page of sigil.listWallets({ pageSize: 1 }).pages()) {
      pages++;
      assert.ok(page.items.length <= 1);
      if (page.nextPageToken) tokens.push(page.nextPageToken);
    }
    assert.ok(pages >= all.length, `${pages} pages for ${all.length} wallets`);

    const ids: string[] = [];
    for await (const w of sigil.listWallets({ pageSize: 2 })) ids.push(w.id);
    assert.deepEqual(ids, all.map((w) => w.id), "same wallets, same order, whatever the page size");
    assert.equal(new Set(ids).size, ids.length, "no wallet twice");
    const times = all.map((w) => Number(w.createTime?.seconds ?? 0n));
    assert.deepEqual(times, [...times].sort((a, b) => a - b), "oldest first");

    // Resuming from a saved token continues where the first page ended.
    const rest = await sigil.listWallets({ pageSize: 1, pageToken: tokens[0] }).toArray();
    assert.deepEqual(rest.map((w) => w.id), ids.slice(1));
    // toArray(limit) stops early.
    assert.equal((await sigil.listWallets({ pageSize: 1 }).toArray(2)).length, 2);
  });

  test("filtering by status", async () => {
    const creating = await sigil.listWallets({ status: WalletStatus.CREATING }).toArray();
    assert.ok(creating.length >= 1, "the tests above left CREATING wallets");
    assert.ok(creating.every((w) => w.status === WalletStatus.CREATING));
    for (const b of ["hsm", "mpc"] as BackendName[]) {
      const id = fixture.backends[b]?.walletId;
      if (!id) continue;
      const active = await sigil.listWallets({ status: WalletStatus.ACTIVE }).toArray();
      assert.ok(active.some((w) => w.id === id), `${b} wallet listed as ACTIVE`);
      assert.ok(active.every((w) => w.status === WalletStatus.ACTIVE));
    }
  });
});

// The README's example, kept here so that it is type-checked with the tests
// (tsconfig.test.json). Run it against `sigil dev`:
//   SIGIL_API_URL=... SIGIL_TOKEN=... npx tsx examples/node/quickstart.ts
import {
  createSigilClient,
  ethereumSignature,
  isFailedPrecondition,
  isNotFound,
  isWalletFailed,
  toHex,
  WalletStatus,
} from "@sigil-wallet/sdk";

const sigil = createSigilClient({
  baseUrl: process.env.SIGIL_API_URL ?? "http://127.0.0.1:8080", // `sigil dev` prints it
  token: process.env.SIGIL_TOKEN!, // `sigil token create --scope admin`, or the one `sigil dev` prints
  timeoutMs: 10_000, // default timeout of each call (default 30 s); each call may override it
});

// 1. A wallet. MPC key generation takes tens of seconds; HSM wallets are ready at once.
//    The external id makes the call safe to retry: the same id gives the same wallet.
const ac = new AbortController();
process.once("SIGINT", () => ac.abort(new Error("interrupted")));
let wallet;
try {
  wallet = await sigil.createWalletAndWait({
    name: "treasury",
    backend: "mpc", // or "hsm"; omit for the server's default
    externalId: "treasury-2025",
    signal: ac.signal, // stops waiting (ConnectError, Code.Canceled)
    timeoutMs: 5 * 60_000, // overall wait (Code.DeadlineExceeded after it)
    onProgress: ({ wallet, elapsedMs }) =>
      console.log(`${wallet.id}: ${WalletStatus[wallet.status]} after ${Math.round(elapsedMs / 1000)} s`),
  });
} catch (err) {
  if (isWalletFailed(err)) console.error("key generation failed:", err.wallet.failureReason);
  throw err;
}
console.log(wallet.id, wallet.addresses?.ethereum, wallet.addresses?.bitcoinP2wpkh);

// 2. Sign a 32-byte hash (bytes or hex) and wait for the result.
const hash = "0x" + "ab".repeat(32);
const sig = await sigil.signHash(wallet.id, hash);
console.log("r", toHex(sig.result!.r), "s", toHex(sig.result!.s), "recovery id", sig.result!.recoveryId);
console.log("DER", toHex(sig.result!.der));

// 3. Sign an EIP-191 personal message; the 65-byte r||s||v form is what
//    ethers' verifyMessage and ecrecover take.
const signed = await sigil.signMessage(wallet.id, "Sign in to example.com\nnonce: 42");
console.log("personal_sign signature", ethereumSignature(signed));

// 4. Lists are async iterables that fetch pages as the loop goes.
for await (const w of sigil.listWallets({ status: WalletStatus.ACTIVE, pageSize: 100 })) {
  console.log(w.id, w.name);
}
const recent = await sigil.listSignatures({ walletId: wallet.id }).toArray(10);
console.log(recent.length, "signatures");

// 5. Errors carry the server's code; the helpers tell the common ones apart.
try {
  await sigil.getWallet("wal_00000000000000000000000000");
} catch (err) {
  if (isNotFound(err)) console.log("no such wallet");
  else throw err;
}
try {
  const pending = await sigil.createWallet({ name: "not yet", backend: "mpc" });
  await sigil.createSignature({ walletId: pending.id, message: "too early" });
} catch (err) {
  if (isFailedPrecondition(err)) console.log("the wallet is not active yet");
  else throw err;
}

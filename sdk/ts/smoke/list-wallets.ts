// Smoke test of the generated TypeScript code (gen/ts): calls ListWallets on
// a running Sigil server over the Connect protocol with a bearer token.
//
//   SIGIL_API_URL=http://127.0.0.1:8080 SIGIL_TOKEN=sgl_... npx tsx sdk/ts/smoke/list-wallets.ts
//
// Prints one JSON line {"wallets": N, "unauthenticated": true} and exits 0,
// or prints the error and exits 1.
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { WalletService } from "../../../gen/ts/sigil/wallet/v1/wallet_pb.js";

const baseUrl = process.env.SIGIL_API_URL;
const token = process.env.SIGIL_TOKEN;
if (!baseUrl || !token) {
  console.error("set SIGIL_API_URL and SIGIL_TOKEN");
  process.exit(2);
}

const bearer =
  (t: string): Interceptor =>
  (next) =>
  async (req) => {
    req.header.set("Authorization", `Bearer ${t}`);
    return next(req);
  };

async function main(): Promise<void> {
  const transport = createConnectTransport({ baseUrl: baseUrl!, httpVersion: "1.1", interceptors: [bearer(token!)] });
  const client = createClient(WalletService, transport);
  const res = await client.listWallets({ pageSize: 10 });
  for (const w of res.wallets) {
    if (!w.id.startsWith("wal_")) throw new Error(`unexpected wallet id ${w.id}`);
  }

  // Without a token the server must answer Unauthenticated.
  const anonymous = createClient(WalletService, createConnectTransport({ baseUrl: baseUrl!, httpVersion: "1.1" }));
  let unauthenticated = false;
  try {
    await anonymous.listWallets({});
  } catch (err) {
    unauthenticated = ConnectError.from(err).code === Code.Unauthenticated;
  }
  console.log(JSON.stringify({ wallets: res.wallets.length, unauthenticated }));
  if (!unauthenticated) process.exit(1);
}

main().catch((err) => {
  console.error(ConnectError.from(err).message);
  process.exit(1);
});

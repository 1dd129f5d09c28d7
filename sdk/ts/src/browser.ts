/**
 * The Sigil SDK for browsers: `createSigilClient` talks to the API port with
 * `@connectrpc/connect-web` (Connect protocol over fetch). The server must
 * allow the page's origin (`sigil server --cors-origin https://app.example`).
 * Also the package's entry under the `browser` export condition.
 *
 * @packageDocumentation
 */
import type { Interceptor, Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { createSigilClientWith, type SigilClient, type SigilClientOptions } from "./client.js";

export * from "./index.js";

/** Makes the default browser transport: Connect protocol with binary messages over fetch. */
export function createDefaultTransport(baseUrl: string, interceptors: Interceptor[] = []): Transport {
  return createConnectTransport({ baseUrl, useBinaryFormat: true, interceptors });
}

/**
 * Creates a Sigil client for the browser.
 *
 * @example
 * ```ts
 * import { createSigilClient } from "@sigil-wallet/sdk";
 * const sigil = createSigilClient({ baseUrl: "http://127.0.0.1:8080", token });
 * for await (const w of sigil.listWallets()) console.log(w.id, w.addresses?.ethereum);
 * ```
 *
 * Throws a TypeError at once when `token` or `baseUrl` is missing or malformed.
 * A server that is down and an origin the server does not allow both end in a
 * `Code.Unavailable` error whose message names both possibilities (the
 * browser does not tell them apart).
 */
export function createSigilClient(options: SigilClientOptions): SigilClient {
  return createSigilClientWith(options, createDefaultTransport);
}

/**
 * The Sigil SDK for Node: `createSigilClient` talks to the API port with
 * `@connectrpc/connect-node` (Connect protocol, binary, HTTP/1.1). Also the
 * package's entry under the `node` export condition.
 *
 * @packageDocumentation
 */
import type { Interceptor, Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { createSigilClientWith, type SigilClient, type SigilClientOptions } from "./client.js";

export * from "./index.js";

/**
 * Makes the default Node transport: Connect protocol with binary messages
 * over HTTP/1.1 (which plain `http://` and TLS `https://` servers both speak).
 */
export function createDefaultTransport(baseUrl: string, interceptors: Interceptor[] = []): Transport {
  return createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true, interceptors });
}

/**
 * Creates a Sigil client for Node.
 *
 * @example
 * ```ts
 * import { createSigilClient } from "@sigil-wallet/sdk";
 * const sigil = createSigilClient({ baseUrl: "http://127.0.0.1:8080", token: process.env.SIGIL_TOKEN! });
 * const wallet = await sigil.createWalletAndWait({ name: "treasury" });
 * ```
 *
 * Throws a TypeError at once when `token` or `baseUrl` is missing or malformed.
 */
export function createSigilClient(options: SigilClientOptions): SigilClient {
  return createSigilClientWith(options, createDefaultTransport);
}

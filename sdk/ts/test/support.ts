// Shared by the test files: the fixture written by scripts/test.mjs (the live
// server, its tokens and the wallets made once per run) and the skip rule.
import { readFileSync } from "node:fs";
import type { TestContext } from "node:test";
import { createSigilClient, RequestKey, type SigilClient } from "@sigil-wallet/sdk";

export type BackendName = "hsm" | "mpc";

export interface Fixture {
  mode: "dev" | "server" | "server+hsm-driver" | "external";
  apiUrl: string;
  token: string;
  readToken: string | null;
  /** The request key signing every signature request (sigil dev --require-signed-requests), if any. */
  requestKeyFile: string | null;
  webOrigin: string;
  ci: boolean;
  backends: Partial<Record<BackendName, { walletId?: string; states?: string[]; error?: string }>>;
  activeBackends: BackendName[];
}

const file = process.env.SIGIL_TEST_FIXTURE;
if (!file) {
  throw new Error("SIGIL_TEST_FIXTURE is not set: run the tests with `npm test`, which starts a server first");
}

export const fixture: Fixture = JSON.parse(readFileSync(file, "utf8")) as Fixture;

/** The PEM of the run's request key, if the server requires signed requests. */
export const requestKeyPem: string | undefined = fixture.requestKeyFile ? readFileSync(fixture.requestKeyFile, "utf8") : undefined;

/** The run's request key, as the SDK loads it with WebCrypto. */
export const requestKey: RequestKey | undefined = requestKeyPem ? await RequestKey.fromPem(requestKeyPem) : undefined;

/** A client of the run's server, signing its requests with the run's request key (if any). */
export function client(token = fixture.token): SigilClient {
  return createSigilClient({ baseUrl: fixture.apiUrl, token, requestKey });
}

/**
 * Returns the id of the shared ACTIVE wallet of a backend, or skips the test
 * when the server has no backend able to make wallets active. Under CI=true
 * nothing is skipped: a missing backend fails the test instead.
 */
export function activeWallet(t: TestContext, backend: BackendName): string | undefined {
  const b = fixture.backends[backend];
  if (b?.walletId) return b.walletId;
  if (fixture.activeBackends.length === 0) {
    const why = `the server (${fixture.mode} mode) has no backend that makes wallets ACTIVE`;
    if (fixture.ci) throw new Error(`${why}; under CI=true signing tests must run (is \`sigil dev\` built in?)`);
    t.skip(why);
    return undefined;
  }
  // Some backend works, just not this one (e.g. no SoftHSM here).
  t.skip(`the ${backend} backend is not available here: ${b?.error ?? "not tried"}`);
  return undefined;
}

/** Random bytes from WebCrypto. */
export function randomBytes(n: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(n));
}

/** A unique suffix for names and external ids. */
export function uniq(): string {
  return `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
}

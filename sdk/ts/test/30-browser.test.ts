// The browser test: serves examples/web with Vite on the origin the server
// allows (CORS), drives it in headless Debian Chromium with playwright-core,
// clicks through listing, creating a wallet and signing a message, checks
// what the page shows (the signature with ethers, against the wallet's
// address) and saves screenshots in test-results/. Then the same page from
// an origin the server does not allow must show a clear error, not hang.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { verifyMessage } from "ethers";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { createServer, type ViteDevServer } from "vite";
import { Backend, WalletStatus } from "@sigil-wallet/sdk";
import { activeWallet, client, fixture, requestKeyPem, uniq } from "./support.js";

const sdkRoot = join(dirname(fileURLToPath(import.meta.url)), "..");
const results = join(sdkRoot, "test-results");
const executablePath = process.env.SIGIL_CHROMIUM || "/usr/bin/chromium";
const origin = new URL(fixture.webOrigin);
const port = Number(origin.port);
// The same page from another origin: "localhost" instead of "127.0.0.1".
const foreignOrigin = `http://localhost:${port}`;

let vite: ViteDevServer;
let context: BrowserContext;
let userDataDir: string;
const pageErrors: string[] = [];

before(async () => {
  mkdirSync(results, { recursive: true });
  vite = await createServer({
    configFile: join(sdkRoot, "examples", "web", "vite.config.ts"),
    server: { host: "127.0.0.1", port, strictPort: true },
    logLevel: "warn",
  });
  await vite.listen();
  userDataDir = mkdtempSync(join(tmpdir(), "sigil-chromium-"));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    viewport: { width: 1200, height: 900 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

after(async () => {
  await context?.close();
  await vite?.close();
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
});

async function openPage(at: string): Promise<Page> {
  const page = await context.newPage();
  page.on("pageerror", (err) => pageErrors.push(`${at}: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error") pageErrors.push(`${at} console: ${msg.text()}`);
  });
  await page.goto(`${at}/`);
  await page.locator("#connect").waitFor();
  return page;
}

async function connect(page: Page, apiUrl: string, token: string): Promise<void> {
  await page.fill("#api-url", apiUrl);
  await page.fill("#token", token);
  // The server requires signed requests: the page signs them with WebCrypto.
  await page.fill("#request-key", requestKeyPem ?? "");
  await page.click("#connect");
}

describe("web example in headless Chromium", () => {
  test("lists wallets, creates one and signs a message", async (t) => {
    const sigil = client();
    const page = await openPage(fixture.webOrigin);

    // 1. Connect and list.
    const before = await sigil.listWallets({ pageSize: 1000 }).toArray();
    await connect(page, fixture.apiUrl, fixture.token);
    await page.locator('#connection-status[data-state="connected"]').waitFor({ timeout: 20_000 });
    const listed = Number(await page.locator("#wallet-count").getAttribute("data-count"));
    assert.ok(listed >= before.length, `page lists ${listed}, SDK listed ${before.length} just before`);
    assert.equal(await page.locator("#wallets tbody tr").count(), listed);
    if (before.length > 0) {
      const first = before[0]!;
      assert.equal(await page.locator(`#wallets tr[data-wallet-id="${first.id}"] td.id`).textContent(), first.id);
    }

    // 2. Create a wallet: HSM when this server has it (fast), else MPC.
    const canSign = fixture.activeBackends.length > 0;
    const backend = fixture.backends.hsm?.walletId ? "hsm" : "mpc";
    const name = `browser-${uniq()}`;
    await page.fill("#wallet-name", name);
    await page.selectOption("#backend", backend);
    await page.click("#create-wallet");

    if (!canSign) {
      // Nothing can make it ACTIVE here: it shows CREATING, and Cancel stops the wait.
      await page.locator("#create-status", { hasText: "CREATING" }).waitFor({ timeout: 20_000 });
      await page.click("#cancel-create");
      await page.locator("#error[data-code=Canceled]").waitFor({ timeout: 10_000 });
      assert.match((await page.textContent("#error")) ?? "", /stopped waiting.*cancelled on the page/);
      await page.screenshot({ path: join(results, "web.png"), fullPage: true });
      activeWallet(t, backend); // skips, or fails under CI=true
      return;
    }

    await page.locator('#create-status[data-state="ACTIVE"]').waitFor({ timeout: backend === "hsm" ? 60_000 : 300_000 });
    const walletId = ((await page.textContent("#created-wallet-id")) ?? "").trim();
    const address = ((await page.textContent("#created-wallet-address")) ?? "").trim();
    const w = await sigil.getWallet(walletId);
    assert.equal(w.status, WalletStatus.ACTIVE);
    assert.equal(w.name, name);
    assert.equal(w.backend, backend === "hsm" ? Backend.HSM : Backend.MPC);
    assert.equal(address, w.addresses?.ethereum);
    assert.equal(await page.locator(`#wallets tr[data-wallet-id="${walletId}"] td.ACTIVE`).count(), 1);

    // 3. Sign a message with it.
    assert.equal(await page.inputValue("#sign-wallet"), walletId);
    const message = `Hello from headless Chromium ${uniq()}`;
    await page.fill("#message", message);
    await page.click("#sign");
    await page.locator('#sign-status[data-state="SIGNED"]').waitFor({ timeout: 180_000 });
    const signature = ((await page.textContent("#signature")) ?? "").trim();
    assert.match(signature, /^0x[0-9a-f]{130}$/);
    assert.equal(((await page.textContent("#signer-address")) ?? "").trim(), address);
    assert.equal(verifyMessage(message, signature), address, "ethers recovers the wallet's address");
    const sigId = ((await page.textContent("#signature-id")) ?? "").trim();
    const s = await sigil.getSignature(sigId);
    assert.equal(s.walletId, walletId);
    assert.equal(s.message, message);

    assert.equal(await page.locator("#error").isVisible(), false);
    await page.screenshot({ path: join(results, "web.png"), fullPage: true });
    assert.deepEqual(pageErrors, []);
    await page.close();
  });

  test("an origin the server does not allow, a missing token and a server that is down give clear errors", async () => {
    const page = await openPage(foreignOrigin);

    const started = Date.now();
    await connect(page, fixture.apiUrl, fixture.token);
    await page.locator("#error[data-code=Unavailable]").waitFor({ timeout: 20_000 });
    assert.ok(Date.now() - started < 20_000);
    const corsError = (await page.textContent("#error")) ?? "";
    assert.match(corsError, /cannot reach the Sigil API at http:\/\/127\.0\.0\.1:\d+/);
    assert.ok(corsError.includes(`--cors-origin ${foreignOrigin}`), corsError);
    assert.equal(await page.getAttribute("#connection-status", "data-state"), "error");
    await page.screenshot({ path: join(results, "web-cors.png"), fullPage: true });

    await connect(page, fixture.apiUrl, "");
    await page.locator("#error", { hasText: "token is required" }).waitFor({ timeout: 5_000 });

    await connect(page, "127.0.0.1:8080", fixture.token);
    await page.locator("#error", { hasText: "must start with http:// or https://" }).waitFor({ timeout: 5_000 });

    const down = Date.now();
    await connect(page, "http://127.0.0.1:9", fixture.token);
    await page.locator("#error", { hasText: "cannot reach the Sigil API at http://127.0.0.1:9" }).waitFor({ timeout: 20_000 });
    assert.ok(Date.now() - down < 20_000);
    await page.close();
  });
});

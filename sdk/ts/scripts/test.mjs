// `npm test`: the TypeScript SDK's test run against one live Sigil server.
//
//  1. makes sure the npm packages and Chromium are there (scripts/ensure-deps.sh);
//  2. builds the SDK (dist/) and the Go binary (go build ./cmd/sigil, once);
//  3. starts one server for the whole run: `sigil dev` (coordinator + MPC
//     signers, + an HSM driver when SoftHSM is there) when the binary has it,
//     else a bare `sigil server` whose wallets never leave CREATING;
//  4. creates the wallets the tests share (key generation is slow: one MPC
//     keygen per run) and writes test-results/fixture.json;
//  5. runs the Node tests and the browser test with node's test runner;
//  6. stops the server, whatever happened.
//
// Environment:
//   SIGIL_TEST_REQUEST_KEY                 with SIGIL_TEST_API_URL: the request key file to sign with
//   SIGIL_TEST_API_URL + SIGIL_TEST_TOKEN  use a running server instead (it must
//                                          allow the origin in SIGIL_TEST_WEB_ORIGIN,
//                                          default http://127.0.0.1:5174, for the browser test)
//   SIGIL_TEST_BIN                         a sigil binary to use instead of building ./cmd/sigil
//   SIGIL_SKIP_BROWSER=1                   skip the browser test (refused when CI=true)
//   SIGIL_CHROMIUM                         browser binary (default /usr/bin/chromium)
//   CI=true                                nothing may be skipped: signing tests need a backend
//                                          that makes wallets ACTIVE
// Flags: --only node | --only browser
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const sdkDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const repoRoot = resolve(sdkDir, "..", "..");
const resultsDir = join(sdkDir, "test-results");
const ci = process.env.CI === "true" || process.env.CI === "1";
const chromium = process.env.SIGIL_CHROMIUM || "/usr/bin/chromium";

const args = process.argv.slice(2);
const only = args.includes("--only") ? args[args.indexOf("--only") + 1] : undefined;
if (only !== undefined && only !== "node" && only !== "browser") fail(`--only takes node or browser, not ${only}`);
let runBrowser = only !== "node";
const runNode = only !== "browser";

function log(msg) {
  console.error(`[sdk-test] ${msg}`);
}

function fail(msg) {
  console.error(`[sdk-test] FAILED: ${msg}`);
  process.exit(1);
}

function run(cmd, argv, opts = {}) {
  const r = spawnSync(cmd, argv, { stdio: "inherit", ...opts });
  if (r.error) return { ok: false, error: r.error };
  return { ok: r.status === 0, status: r.status };
}

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.unref();
    s.on("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- 1. dependencies ------------------------------------------------------

function ensureDeps() {
  if (!existsSync(join(sdkDir, "node_modules", "@connectrpc", "connect-web"))) {
    log("node_modules missing: running scripts/ensure-deps.sh --npm");
    if (!run("bash", [join(sdkDir, "scripts", "ensure-deps.sh"), "--npm"]).ok) fail("npm ci failed");
  }
  if (runBrowser && process.env.SIGIL_SKIP_BROWSER === "1") {
    if (ci) fail("SIGIL_SKIP_BROWSER=1 is not allowed when CI=true: the browser test must run");
    log("SIGIL_SKIP_BROWSER=1: the browser test is skipped");
    runBrowser = false;
  }
  if (runBrowser && !existsSync(chromium)) {
    log(`${chromium} missing: running scripts/ensure-deps.sh --system`);
    const r = run("bash", [join(sdkDir, "scripts", "ensure-deps.sh"), "--system"], {
      env: { ...process.env, SIGIL_CHROMIUM: chromium },
    });
    if (!r.ok || !existsSync(chromium)) {
      fail(
        `the browser test needs Chromium at ${chromium}. As root: apt-get install -y chromium; ` +
          `or set SIGIL_CHROMIUM to a Chromium binary; or run SIGIL_SKIP_BROWSER=1 npm test (not under CI).`,
      );
    }
  }
}

// ---- 2. builds ------------------------------------------------------------

function buildSdk() {
  log("building the SDK (dist/)");
  if (!run(process.execPath, [join(sdkDir, "scripts", "copy-gen.mjs")]).ok) fail("copying gen/ts failed");
  if (!run(process.execPath, [join(sdkDir, "node_modules", "typescript", "bin", "tsc"), "-p", join(sdkDir, "tsconfig.json")]).ok) {
    fail("tsc failed to build the SDK");
  }
  // Type-check the tests, the examples and the README example (tsx only strips types).
  if (!run(process.execPath, [join(sdkDir, "node_modules", "typescript", "bin", "tsc"), "-p", join(sdkDir, "tsconfig.test.json")]).ok) {
    fail("tsc found type errors in the tests or examples");
  }
}

function buildSigil(tmp) {
  if (process.env.SIGIL_TEST_BIN) {
    log(`using the sigil binary ${process.env.SIGIL_TEST_BIN} (SIGIL_TEST_BIN)`);
    return process.env.SIGIL_TEST_BIN;
  }
  const bin = join(tmp, "sigil");
  log("building the sigil binary (go build ./cmd/sigil)");
  const r = run("go", ["build", "-o", bin, "./cmd/sigil"], { cwd: repoRoot });
  if (r.error?.code === "ENOENT") fail("`go` is not on PATH: the tests start a real sigil server built from this repository");
  if (!r.ok) fail("go build ./cmd/sigil failed (see above)");
  return bin;
}

function hasDev(bin) {
  const r = spawnSync(bin, ["dev", "--help"], { encoding: "utf8" });
  return !/unknown command/.test(`${r.stdout}${r.stderr}`);
}

// ---- 3. the server ----------------------------------------------------------

/** The processes this run started, in start order. @type {import("node:child_process").ChildProcess[]} */
const procs = [];

async function stopServer() {
  // Stop in reverse order: drivers before the coordinator.
  while (procs.length > 0) await stopProcess(procs.pop());
}

async function stopProcess(p) {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise((r) => p.once("exit", r));
  // The server runs in its own process group (detached), so signalling the
  // group also stops any signer or driver process it started.
  const kill = (sig) => {
    try {
      process.kill(-p.pid, sig);
    } catch {
      p.kill(sig);
    }
  };
  kill("SIGTERM");
  const t = setTimeout(() => kill("SIGKILL"), 15_000);
  await exited;
  clearTimeout(t);
}

// Last resort when this process dies some other way: never leave a server behind.
process.on("exit", () => {
  for (const p of procs) {
    if (p.exitCode === null && p.signalCode === null) {
      try {
        process.kill(-p.pid, "SIGKILL");
      } catch {
        /* already gone */
      }
    }
  }
});

for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    stopServer().finally(() => process.exit(130));
  });
}

function tail(file, n = 40) {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-n).join("\n");
  } catch {
    return "(no log)";
  }
}

function startProcess(bin, argv, logFile, env = process.env) {
  const fd = openSync(logFile, "w");
  const p = spawn(bin, argv, { stdio: ["ignore", fd, fd], detached: true, env });
  procs.push(p);
  return p;
}

async function waitFor(what, timeoutMs, proc, logFile, probe) {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      fail(`${what}: the server exited (${proc.exitCode ?? proc.signalCode}) before it was ready. Its log:\n${tail(logFile)}`);
    }
    const v = probe();
    if (v) return v;
    await sleep(250);
  }
  fail(`${what}: not ready after ${timeoutMs / 1000} s. Its log:\n${tail(logFile)}`);
}

async function startDev(bin, tmp, webOrigin) {
  const dataDir = join(tmp, "dev");
  const logFile = join(resultsDir, "sigil.log");
  // Signed requests required: every signature the tests make is signed by
  // the SDK (Node and browser) and verified by the signers and the driver.
  const argv = ["dev", "--data-dir", dataDir, "--api-addr", "127.0.0.1:0", "--node-addr", "127.0.0.1:0", "--metrics-addr", "", "--cors-origin", webOrigin,
    "--require-signed-requests"];
  log(`starting: sigil ${argv.join(" ")}  (log: test-results/sigil.log)`);
  const proc = startProcess(bin, argv, logFile);
  const devJson = join(dataDir, "dev.json");
  const info = await waitFor("sigil dev", 180_000, proc, logFile, () => {
    try {
      const j = JSON.parse(readFileSync(devJson, "utf8"));
      return j.api_url && j.token ? j : undefined;
    } catch {
      return undefined;
    }
  });
  return {
    mode: "dev", apiUrl: info.api_url, token: info.token, dataDir, dev: info, readToken: makeToken(bin, dataDir, "wallets:read"),
    requestKeyFile: info.request_key_file ?? null,
  };
}

async function startBareServer(bin, tmp, webOrigin) {
  const dataDir = join(tmp, "data");
  const pki = join(tmp, "pki");
  mkdirSync(dataDir, { recursive: true });
  const quiet = { stdio: ["ignore", "ignore", "inherit"] };
  if (!run(bin, ["pki", "init", "--dir", pki], quiet).ok) fail("sigil pki init failed");
  if (!run(bin, ["pki", "issue", "--dir", pki, "--name", "sigil-server", "--role", "server"], quiet).ok) fail("sigil pki issue failed");
  const token = makeToken(bin, dataDir, "admin");
  if (!token) fail("sigil token create failed");
  const logFile = join(resultsDir, "sigil.log");
  const argv = [
    "server", "--data-dir", dataDir, "--api-addr", "127.0.0.1:0", "--node-addr", "127.0.0.1:0", "--metrics-addr", "",
    "--node-tls-cert", join(pki, "sigil-server.pem"), "--node-tls-key", join(pki, "sigil-server-key.pem"), "--node-client-ca", join(pki, "ca.pem"),
    "--hsm", "--mpc-signers", "signer-1,signer-2,signer-3", "--mpc-threshold", "2", "--cors-origin", webOrigin,
  ];
  log(`\`sigil dev\` is not in this binary: starting \`sigil server\` (log: test-results/sigil.log)`);
  const proc = startProcess(bin, argv, logFile);
  const ready = await waitFor("sigil server", 60_000, proc, logFile, () => {
    const m = /sigil server ready.*api=(\S+) node=(\S+)/.exec(tail(logFile, 200));
    return m ? { apiUrl: m[1], nodeAddr: m[2] } : undefined;
  });
  const driver = await startHsmDriver(bin, tmp, pki, ready.nodeAddr);
  return { mode: driver ? "server+hsm-driver" : "server", apiUrl: ready.apiUrl, token, dataDir, readToken: makeToken(bin, dataDir, "wallets:read") };
}

const softhsmModule = ["/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"].find((p) => existsSync(p));

/**
 * Beside a bare server, runs `sigil hsm-driver` on a fresh SoftHSM token so
 * that HSM wallets become ACTIVE, when the binary and SoftHSM allow it.
 * Returns false (and the run has no active backend) otherwise.
 */
async function startHsmDriver(bin, tmp, pki, nodeAddr) {
  const help = spawnSync(bin, ["hsm-driver", "--help"], { encoding: "utf8" });
  if (/unknown command/.test(`${help.stdout}${help.stderr}`)) {
    log("no `sigil hsm-driver` in this binary either: wallets will stay CREATING");
    return false;
  }
  if (!softhsmModule || spawnSync("softhsm2-util", ["--version"]).status !== 0) {
    log("SoftHSM is not installed (apt-get install softhsm2): no HSM driver, wallets will stay CREATING");
    return false;
  }
  const hsmDir = join(tmp, "softhsm");
  mkdirSync(join(hsmDir, "tokens"), { recursive: true });
  const conf = join(hsmDir, "softhsm2.conf");
  writeFileSync(conf, `directories.tokendir = ${join(hsmDir, "tokens")}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  const pinFile = join(hsmDir, "pin");
  writeFileSync(pinFile, "1234\n", { mode: 0o600 });
  const env = { ...process.env, SOFTHSM2_CONF: conf };
  const quiet = { stdio: ["ignore", "ignore", "inherit"], env };
  const hsmArgs = ["--pkcs11-module", softhsmModule, "--token-label", "sigil-test", "--pin-file", pinFile];
  if (
    !run("softhsm2-util", ["--init-token", "--free", "--label", "sigil-test", "--pin", "1234", "--so-pin", "5678"], quiet).ok ||
    !run(bin, ["hsm", "init-master-key", ...hsmArgs], quiet).ok ||
    !run(bin, ["pki", "issue", "--dir", pki, "--name", "driver-1", "--role", "driver"], quiet).ok
  ) {
    log("could not set up SoftHSM for the HSM driver: wallets will stay CREATING");
    return false;
  }
  const logFile = join(resultsDir, "sigil-hsm-driver.log");
  const argv = [
    "hsm-driver", ...hsmArgs, "--data-dir", join(tmp, "hsm-driver"), "--metrics-addr", "",
    "--node-url", `https://${nodeAddr}`, "--node-ca", join(pki, "ca.pem"),
    "--tls-cert", join(pki, "driver-1.pem"), "--tls-key", join(pki, "driver-1-key.pem"),
  ];
  log("starting `sigil hsm-driver` on a SoftHSM token (log: test-results/sigil-hsm-driver.log)");
  startProcess(bin, argv, logFile, env);
  return true;
}

/** Creates a token with one scope in the coordinator database under dataDir; undefined if that fails. */
function makeToken(bin, dataDir, scope) {
  const dbDir = findDbDir(dataDir) ?? dataDir;
  if (!dbDir) return undefined;
  const r = spawnSync(bin, ["token", "create", "--scope", scope, "--data-dir", dbDir, "--description", "sdk/ts tests"], { encoding: "utf8" });
  const t = r.stdout?.trim();
  return r.status === 0 && t ? t : undefined;
}

function findDbDir(dir, depth = 0) {
  if (existsSync(join(dir, "sigil.db"))) return dir;
  if (depth > 3) return undefined;
  let entries = [];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return undefined;
  }
  for (const e of entries) {
    if (e.isDirectory()) {
      const d = findDbDir(join(dir, e.name), depth + 1);
      if (d) return d;
    }
  }
  return undefined;
}

// ---- 4. shared wallets ------------------------------------------------------

async function createSharedWallets(server) {
  const sdk = await import(join(sdkDir, "dist", "node.js"));
  const sigil = sdk.createSigilClient({ baseUrl: server.apiUrl, token: server.token });
  const backends = {};
  if (server.mode === "server") {
    log("no signers or HSM driver run beside the bare server: no backend can make wallets active");
    return { backends, activeBackends: [] };
  }
  const make = async (name, timeoutMs) => {
    const started = Date.now();
    const states = [];
    try {
      const w = await sigil.createWalletAndWait({
        name: `sdk-test-shared-${name}`,
        backend: name,
        timeoutMs,
        onProgress: ({ wallet }) => {
          const s = sdk.WalletStatus[wallet.status];
          if (states.at(-1) !== s) states.push(s);
        },
      });
      log(`${name} wallet ${w.id} ACTIVE after ${((Date.now() - started) / 1000).toFixed(1)} s (${states.join(" -> ")})`);
      backends[name] = { walletId: w.id, states, seconds: (Date.now() - started) / 1000 };
    } catch (err) {
      const why = `${err?.name ?? "Error"}: ${err?.message ?? err}`;
      log(`${name} backend cannot make an active wallet: ${why}`);
      backends[name] = { error: why, code: sdk.errorCode(err) };
    }
  };
  if (server.mode === "server+hsm-driver") {
    // No MPC signers run beside a bare server: only HSM wallets can become active.
    log("creating the shared HSM wallet");
    await make("hsm", 60_000);
    backends.mpc = { error: "no MPC signers run beside `sigil server` (needs `sigil dev`)" };
  } else {
    log("creating the shared wallets (HSM and MPC; MPC key generation takes 30-60 s)");
    await Promise.all([make("hsm", 60_000), make("mpc", 300_000)]);
  }
  return { backends, activeBackends: Object.keys(backends).filter((k) => backends[k].walletId) };
}

// ---- 5. tests -----------------------------------------------------------------

function testFiles() {
  // node's test runner sorts the files by name, and the numbers set the
  // order that matters on small machines: signing first, then the browser
  // test, then the files that start extra MPC key generations (wallets,
  // errors), whose CPU load would slow MPC signing down.
  return readdirSync(join(sdkDir, "test"))
    .filter((f) => f.endsWith(".test.ts"))
    .filter((f) => (f.includes("browser") ? runBrowser : runNode))
    .sort()
    .map((f) => join("test", f));
}

async function main() {
  mkdirSync(resultsDir, { recursive: true });
  ensureDeps();
  buildSdk();

  const tmp = mkdtempSync(join(tmpdir(), "sigil-sdk-test-"));
  let code = 1;
  try {
    const webPort = await freePort();
    let server;
    let webOrigin;
    if (process.env.SIGIL_TEST_API_URL && process.env.SIGIL_TEST_TOKEN) {
      webOrigin = process.env.SIGIL_TEST_WEB_ORIGIN || "http://127.0.0.1:5174";
      server = { mode: "external", apiUrl: process.env.SIGIL_TEST_API_URL, token: process.env.SIGIL_TEST_TOKEN };
      log(`using the running server at ${server.apiUrl}`);
    } else {
      webOrigin = `http://127.0.0.1:${webPort}`;
      const bin = buildSigil(tmp);
      server = hasDev(bin) ? await startDev(bin, tmp, webOrigin) : await startBareServer(bin, tmp, webOrigin);
      log(`server ready at ${server.apiUrl} (${server.mode} mode)`);
    }
    const shared = server.mode === "external" ? await createSharedWallets({ ...server, mode: "dev" }) : await createSharedWallets(server);
    const fixture = {
      mode: server.mode,
      apiUrl: server.apiUrl,
      token: server.token,
      readToken: server.readToken ?? null,
      requestKeyFile: server.requestKeyFile ?? process.env.SIGIL_TEST_REQUEST_KEY ?? null,
      webOrigin,
      ci,
      ...shared,
    };
    const fixtureFile = join(resultsDir, "fixture.json");
    writeFileSync(fixtureFile, JSON.stringify(fixture, null, 2));

    const files = testFiles();
    log(`running ${files.length} test files with node --test`);
    const r = run(
      process.execPath,
      ["--import", "tsx", "--test", "--test-concurrency=1", "--test-timeout=600000", "--test-reporter=spec", ...files],
      { cwd: sdkDir, env: { ...process.env, SIGIL_TEST_FIXTURE: fixtureFile, SIGIL_CHROMIUM: chromium } },
    );
    code = r.ok ? 0 : 1;
  } finally {
    await stopServer();
    rmSync(tmp, { recursive: true, force: true });
  }
  process.exit(code);
}

main().catch(async (err) => {
  console.error(err);
  await stopServer();
  process.exit(1);
});

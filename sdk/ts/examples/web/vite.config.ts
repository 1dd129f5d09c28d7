// Vite config of the web example. The page imports "@sigil-wallet/sdk",
// mapped here to the SDK's built browser entry (run `npm run build` in sdk/ts
// first; `npm run example:web` does), exactly what an app gets from npm under
// the "browser" export condition.
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const sdkRoot = fileURLToPath(new URL("../..", import.meta.url));

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  resolve: {
    alias: {
      "@sigil-wallet/sdk": `${sdkRoot}dist/browser.js`,
    },
  },
  server: {
    host: "127.0.0.1",
    port: 5173,
    strictPort: true,
    fs: { allow: [sdkRoot] },
  },
  preview: { host: "127.0.0.1", port: 5173, strictPort: true },
  clearScreen: false,
});

// The demo page: built to demo/dist by `npm run build --workspace client`, served next to the
// worker by scripts/dev.sh (scripts/demo-server.mjs), which also answers its /config.json.
import { defineConfig } from "vite";

export default defineConfig({
  root: import.meta.dirname,
  base: "./",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    rolldownOptions: {
      // TanStack Query marks its hooks "use client" for React Server Components; a browser-only
      // bundle has nothing to preserve.
      onwarn(warning, warn) {
        if (warning.code !== "MODULE_LEVEL_DIRECTIVE") warn(warning);
      },
    },
  },
});

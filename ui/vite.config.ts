import { defineConfig } from 'vitest/config';
import { svelte } from '@sveltejs/vite-plugin-svelte';

// The UI is served by Tauri from dist/ (no dev server in the app). Three test projects:
// unit (the pure logic), browser (the built UI in headless Chromium with the IPC mocked) and
// app (the real desktop binary under Xvfb through WebDriver).
export default defineConfig({
  plugins: [svelte()],
  clearScreen: false,
  server: { port: 5173, strictPort: true },
  // No timing report: a slow build on a shared machine is not a problem to print.
  build: { target: 'es2022', outDir: 'dist', emptyOutDir: true, sourcemap: false, rolldownOptions: { checks: { bundlerTimings: false } } },
  test: {
    projects: [
      { extends: true, test: { name: 'unit', include: ['src/**/*.test.ts'], environment: 'node' } },
      { test: { name: 'browser', include: ['e2e/browser.e2e.test.ts'], testTimeout: 30_000, hookTimeout: 60_000, fileParallelism: false } },
      { test: { name: 'app', include: ['e2e/app.e2e.test.ts'], testTimeout: 180_000, hookTimeout: 120_000, fileParallelism: false } },
    ],
  },
});

import { defineConfig } from 'vite';

export default defineConfig({
  root: 'src/ui',
  publicDir: false,
  build: {
    outDir: '../../dist/public',
    emptyOutDir: true,
    target: 'es2022',
    // No inline scripts or data: modules: the CSP allows only 'self'.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
});

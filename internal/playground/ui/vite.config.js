import { defineConfig } from 'vite';

// The build lands in ../dist, which the Go package embeds (go:embed) and serves under
// /playground/: everything the page loads (scripts, styles, fonts, Monaco's workers)
// comes from there, so the playground works without any other host.
export default defineConfig({
  base: '/playground/',
  // No JSX: the sources use React.createElement, so no Babel or React plugin is needed.
  build: {
    outDir: '../dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    // No data: URLs for fonts and images: every asset is a file with a hashed name.
    assetsInlineLimit: 0,
    sourcemap: false,
    reportCompressedSize: false,
    chunkSizeWarningLimit: 8000,
    rollupOptions: {
      onwarn(warning, warn) {
        // React libraries mark their modules "use client", which means nothing here.
        if (warning.code === 'MODULE_LEVEL_DIRECTIVE') return;
        warn(warning);
      },
    },
  },
  worker: { format: 'es' },
});

import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// The api serves the built page and answers /api and /otlp on one origin; in development the
// dev server stands in for the page's half and hands the rest to a local api.
const API = 'http://127.0.0.1:8080';

export default defineConfig({
  plugins: [react()],
  server: {
    proxy: {
      '/api': API,
      '/otlp': API,
    },
  },
});

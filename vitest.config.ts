import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'sample-hooks/**/*.test.ts'],
    // Logs of the daemons and of the in-process engine go to files, printed for a failing test only.
    setupFiles: ['test/support/test-logs-setup.ts'],
    // Test files start worker threads of their own; two files at once would fight them for 2 cores.
    fileParallelism: false,
    testTimeout: 30_000,
    hookTimeout: 30_000,
    teardownTimeout: 10_000,
  },
});

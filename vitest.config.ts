import { tmpdir } from 'node:os';
import { defineConfig } from 'vitest/config';

// The tests load hook libraries from test/fixtures, sample-hooks/ and temporary folders, and put
// sockets and log files in temporary folders: the path hardening (src/config/path-policy.ts) lets
// them do so through its variables, which every daemon a test starts inherits. The hardening
// tests narrow them again for their own daemons.
const repoAndTemp = `${process.cwd()}:${tmpdir()}`;

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'sample-hooks/**/*.test.ts', 'hook-libraries/**/*.test.ts'],
    // Logs of the daemons and of the in-process engine go to files, printed for a failing test only.
    setupFiles: ['test/support/test-logs-setup.ts'],
    // Test files start worker threads of their own; two files at once would fight them for 2 cores.
    fileParallelism: false,
    testTimeout: 30_000,
    hookTimeout: 30_000,
    teardownTimeout: 10_000,
    env: { D2BOX_HOOKS_PATH: repoAndTemp, D2BOX_CONTROL_SOCKET_DIR: repoAndTemp, D2BOX_LOG_FILE_DIR: repoAndTemp },
  },
});

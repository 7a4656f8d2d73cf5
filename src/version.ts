/** Version strings for -v, -V, -W, version-get and build-report. */
import { readFileSync } from 'node:fs';
import { INTAKE_DEFAULTS } from './config/intake-config.js';
import { processSandboxSupport } from './hooks/process-sandbox.js';
import { describeReceiveBuffer, readRmemMax } from './ncr/ncr-socket-buffer.js';

/** package.json is one level up from src/, two from dist/src/. */
function readPackage(): { version: string } {
  for (const relative of ['../package.json', '../../package.json']) {
    try {
      return JSON.parse(readFileSync(new URL(relative, import.meta.url), 'utf8')) as { version: string };
    } catch {
      // not at this level
    }
  }
  return { version: '0.0.0' };
}
const pkg = readPackage();

export const VERSION: string = pkg.version;
export const EXTENDED_VERSION = `${VERSION}\nd2box (DHCP-DDNS, Kea D2 compatible, hooks version 20200)\nNode.js ${process.versions.node}, V8 ${process.versions.v8}, OpenSSL ${process.versions.openssl}`;
export const BUILD_REPORT = [
  'd2box configuration report',
  `  version:      ${VERSION}`,
  `  node:         ${process.versions.node}`,
  `  openssl:      ${process.versions.openssl}`,
  `  platform:     ${process.platform} ${process.arch}`,
  '  hooks:        worker_threads (piscina), one thread per library',
].join('\n');

/**
 * -W: the build report, and whether hook libraries can run in "isolation":
 * "process" on this host (bwrap tried for real, once).
 */
export function isolationReport(): string {
  const support = processSandboxSupport();
  return [
    BUILD_REPORT,
    `  isolation:    thread: available; process: ${support.ok ? 'available' : 'NOT available'} (${support.detail})`,
    `  ncr intake:   ${describeReceiveBuffer(INTAKE_DEFAULTS.receiveBufferBytes, undefined, readRmemMax()).text} (default d2box-ncr-receive-buffer-bytes); queue bound ${INTAKE_DEFAULTS.maxQueueSize} NCRs (default d2box-max-queue-size); ${INTAKE_DEFAULTS.readerThread ? 'read in a thread of its own' : 'read on the main loop'} (default d2box-ncr-reader-thread)`,
  ].join('\n');
}

/**
 * The log pipeline hands lines to its destinations once per turn of the event
 * loop; a process that exits in the same turn (process.exit, no loop left to
 * run) still gets every line it logged into its outputs, as pino.destination
 * did. Runs the built pipeline (dist/, `npm run build`) in a child process.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

const PIPELINE = pathToFileURL(resolve('dist/src/log/log-pipeline.js')).href;
const LOGGER = pathToFileURL(resolve('dist/src/log/logger.js')).href;
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function run(script: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, ['--input-type=module', '-e', script], { timeout: 20_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('log pipeline at exit', () => {
  it('lines logged just before process.exit() reach a file and stdout', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'd2box-logexit-'));
    dirs.push(dir);
    const file = join(dir, 'd2.log');
    const script = `
      import { LogPipeline } from ${JSON.stringify(PIPELINE)};
      import { Logger } from ${JSON.stringify(LOGGER)};
      const p = new LogPipeline().install();
      p.configure([{ name: 'kea-dhcp-ddns', severity: 'INFO', debuglevel: 0, output_options: [
        { output: ${JSON.stringify(file)}, flush: true, maxsize: 0, maxver: 0, pattern: '%m\\n' },
        { output: 'stdout', flush: false, maxsize: 0, maxver: 0, pattern: '%m\\n' },
      ] }]);
      const log = new Logger('exit-test');
      setTimeout(() => {
        for (let i = 0; i < 500; i++) log.info('LINE', String(i));
        process.exit(0);
      }, 50);
    `;
    const r = await run(script);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const expected = Array.from({ length: 500 }, (_, i) => `LINE ${i}`);
    expect(readFileSync(file, 'utf8').trim().split('\n')).toEqual(expected);
    expect(r.stdout.trim().split('\n')).toEqual(expected);
  });
});

#!/usr/bin/env node
/**
 * d2box's command line, flag for flag Kea's `kea-dhcp-ddns`:
 *   -v version, -V extended version, -W configuration report, -d verbose,
 *   -c FILE run, -t FILE check the configuration, -T FILE check it and load the hook libraries.
 * And one subcommand of d2box's own: `d2box loadtest [options]` (docs/isolation.md).
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import v8 from 'node:v8';
import { D2Controller } from './d2/d2-controller.js';
import { VERSION, EXTENDED_VERSION, isolationReport } from './version.js';

const USAGE = `Usage: d2box
  -v: print version number and exit
  -V: print extended version information and exit
  -W: display the configuration report and exit
  -d: optional, verbose output
  -c <config file name> : mandatory, specify name of configuration file
  -t <config file name> : check the configuration file and exit
  -T <config file name> : check the configuration file, loading its hook libraries, and exit
`;

function usageError(message: string): never {
  process.stderr.write(`Usage error: ${message}\n${USAGE}`);
  process.exit(1);
}

/**
 * The daemon's young generation: V8 grows it, under a steady stream of
 * short-lived requests, to its 16 MB-per-semi-space maximum (32 MB resident
 * for the new space alone), which buys nothing here: what survives a scavenge
 * is the few requests in flight. d2box lets it grow to YOUNG_SEMI_SPACE_MB per
 * semi-space (loading the modules usually gets it there) and then stops it
 * growing: V8 reads the growth factor at each growth, so setting it to 1 works
 * after start-up (the maximum itself can only be given on node's command line;
 * the factor can go back to V8's 2 when a worker starts, hence the GC observer).
 * Left alone when the operator gave node a semi-space option (on node's command
 * line or in NODE_OPTIONS). Fast responder, 5000 + 5000 NCRs with select_key:
 * peak RSS about 109 -> 94 MB at the same CPU; scavenges more frequent, each shorter.
 */
export const YOUNG_SEMI_SPACE_MB = 4;

function capYoungGeneration(): void {
  const given = [...process.execArgv, ...(process.env['NODE_OPTIONS'] ?? '').split(/\s+/)];
  if (given.some((a) => /semi[-_]space/.test(a))) return;
  // new_space's size is both semi-spaces.
  const grown = (): boolean => (v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? Infinity) >= 2 * YOUNG_SEMI_SPACE_MB * 1024 * 1024;
  const stop = (): void => v8.setFlagsFromString('--semi-space-growth-factor=1');
  if (grown()) stop();
  // Checked again after every GC: V8 puts the factor back to 2 whenever an isolate
  // is created (a hook library's worker starting or restarting), and a growth needs
  // many scavenges' worth of survivors, so the next GC is soon enough to undo that.
  new PerformanceObserver(() => {
    if (grown()) stop();
  }).observe({ entryTypes: ['gc'] });
}

async function main(argv: string[]): Promise<number> {
  // d2box's own subcommand, before Kea's flags: the isolation load tester (src/loadtest/).
  if (argv[0] === 'loadtest') {
    const { loadtestMain } = await import('./loadtest/index.js');
    return loadtestMain(argv.slice(1));
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        v: { type: 'boolean' },
        V: { type: 'boolean' },
        W: { type: 'boolean' },
        d: { type: 'boolean' },
        c: { type: 'string' },
        t: { type: 'string' },
        T: { type: 'string' },
      },
    });
  } catch (err) {
    usageError((err as Error).message);
  }
  const o = parsed.values;
  if (o.v) {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  if (o.V) {
    process.stdout.write(`${EXTENDED_VERSION}\n`);
    return 0;
  }
  if (o.W) {
    process.stdout.write(`${isolationReport()}\n`);
    return 0;
  }
  const modes = [o.c, o.t, o.T].filter((m) => m !== undefined);
  if (modes.length !== 1) usageError(modes.length === 0 ? 'configuration file name not specified' : 'only one of -c, -t and -T may be given');
  if (o.c !== undefined) capYoungGeneration();
  const controller = new D2Controller({ verbose: o.d === true });
  if (o.t !== undefined) return controller.checkConfig(o.t, { loadHooks: false });
  if (o.T !== undefined) return controller.checkConfig(o.T, { loadHooks: true });
  return controller.run(o.c!);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`d2box: fatal: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);

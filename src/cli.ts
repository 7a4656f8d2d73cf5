#!/usr/bin/env node
/**
 * d2box's command line, flag for flag Kea's `kea-dhcp-ddns`:
 *   -v version, -V extended version, -W configuration report, -d verbose,
 *   -c FILE run, -t FILE check the configuration, -T FILE check it and load the hook libraries.
 * And one subcommand of d2box's own: `d2box loadtest [options]` (docs/isolation.md).
 */
import { parseArgs } from 'node:util';
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

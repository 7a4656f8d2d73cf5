/**
 * `d2box loadtest`: drives a hook library's callouts on one hook point, at a
 * chosen concurrency, for a duration and/or a count, optionally with a fault
 * mix from the fault-injection sample, and prints what happened.
 */
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import type { HookLibraryConfigInput } from '../hooks/library-config.js';
import { stderrSink } from '../log/logger.js';
import { configurationFromFile, generatedConfiguration, LoadtestConfigurationError } from './configuration.js';
import { writeFileSync } from 'node:fs';
import { timelineCsv } from './csv.js';
import { htmlReport } from './html-report.js';
import { formatComparison, formatReport, progressLine } from './report.js';
import { DEFAULT_INTERVAL_MS, LoadtestError, MAX_DURATION_S, runLoadtest, type LoadtestOptions } from './runner.js';
import { applyVariant, comparisonVariants, machineDescription, type LoadtestComparison, type LoadtestRun, type LoadtestSettings, type LoadtestVariant } from './session.js';

export const LOADTEST_USAGE = `Usage: d2box loadtest [options]
  --library PATH        hook library to drive (default: the --config file's hooks-libraries,
                        else the fault-injection sample)
  --config FILE         a DhcpDdns configuration: d2_srv_configured gets it before the run, and
                        select_key's arguments are drawn from its DNS servers and keys
                        (default: a generated one, printed with the report)
  --parameters JSON     the library's parameters
  --sandbox JSON        sandbox policy overrides, e.g. '{"callout-timeout-ms":200,"max-restarts":20}'
  --hook NAME           hook point: select_key (default), d2_srv_configured, command_processed,
                        context_create, context_destroy, or $command
  --command NAME        drive command NAME's command callouts (same as --hook '$name')
  --concurrency N       callouts in flight at once (default 16)
  --duration SECONDS    stop issuing after this long (default 10 unless --count; at most ${MAX_DURATION_S})
  --count N             stop after N callouts
  --faults SPEC         fault mix through the fault-injection sample, e.g. throw=0.01,exit=0.001
                        (faults: throw reject non-zero hang oom exit timer-throw invalid-argument
                        log-flood slow); with --library it runs in the chain after that library
  --seed N              seed of the generated arguments and of the faults (default 1)
  --revive              bring a quarantined library back (hooks-restart) and go on
  --progress            live progress line on stderr even when stderr is not a TTY
  --no-progress         no progress line
  --progress-interval MS  how often the progress line is updated (default 500 on a TTY, else 1000)
  --log                 print the hook host's log on stderr
  --json                print the result as JSON (with --compare: {settings, runs: [{name, sandbox, report}]})
  --interval MS         length of one timeline interval (default ${DEFAULT_INTERVAL_MS})
  --report FILE.html    write a self-contained HTML report: settings, totals, timelines with the
                        restarts and quarantines marked, latency histogram
  --csv FILE            write the timeline as CSV, one row per run and interval
  --compare             run the same load, seed and fault mix once per isolation mode (thread,
                        then process) and show them side by side
  --compare-sandbox JSON  with --compare, give twice to compare two policies as well (four runs)
  -h, --help            this text
`;

/** The fault-injection sample, compiled: next to this file in dist, or in dist when running from source. */
export function faultInjectionLibrary(): string {
  const here = import.meta.url;
  const url = here.endsWith('.ts')
    ? new URL('../../dist/sample-hooks/fault-injection/index.js', here)
    : new URL('../../sample-hooks/fault-injection/index.js', here);
  return fileURLToPath(url);
}

/** `throw=0.01,exit=0.001` or a JSON map. */
export function parseFaults(spec: string): Record<string, number> {
  const text = spec.trim();
  if (text.startsWith('{')) return JSON.parse(text) as Record<string, number>;
  const faults: Record<string, number> = {};
  for (const part of text.split(',').filter(Boolean)) {
    const [name, rate] = part.split('=');
    const value = Number(rate);
    if (!name || rate === undefined || !Number.isFinite(value)) throw new LoadtestError(`--faults: "${part}" is not fault=rate`);
    faults[name.trim()] = value;
  }
  return faults;
}

function jsonOption(name: string, text: string | undefined): Record<string, unknown> {
  if (text === undefined) return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new LoadtestError(`--${name}: not JSON: ${(err as Error).message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new LoadtestError(`--${name} must be a JSON object`);
  return value as Record<string, unknown>;
}

function numberOption(name: string, text: string | undefined, integer: boolean): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isFinite(value) || (integer && !Number.isInteger(value))) throw new LoadtestError(`--${name}: "${text}" is not ${integer ? 'an integer' : 'a number'}`);
  return value;
}

/** Turns the command line into runner options. */
export interface LoadtestArgs {
  options: LoadtestOptions;
  json: boolean;
  progress: boolean | undefined;
  progressIntervalMs: number | undefined;
  log: boolean;
  /** --report and --csv files. */
  reportFile?: string;
  csvFile?: string;
  /** With --compare, the runs to make; otherwise none (one run as given). */
  variants: LoadtestVariant[];
  sandbox: Record<string, unknown>;
  faults: Record<string, number> | null;
}

export function parseLoadtestArgs(argv: string[]): LoadtestArgs | { help: true } {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        library: { type: 'string' },
        config: { type: 'string' },
        parameters: { type: 'string' },
        sandbox: { type: 'string' },
        hook: { type: 'string' },
        command: { type: 'string' },
        concurrency: { type: 'string' },
        duration: { type: 'string' },
        count: { type: 'string' },
        faults: { type: 'string' },
        seed: { type: 'string' },
        revive: { type: 'boolean' },
        progress: { type: 'boolean' },
        'no-progress': { type: 'boolean' },
        'progress-interval': { type: 'string' },
        log: { type: 'boolean' },
        json: { type: 'boolean' },
        interval: { type: 'string' },
        report: { type: 'string' },
        csv: { type: 'string' },
        compare: { type: 'boolean' },
        'compare-sandbox': { type: 'string', multiple: true },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new LoadtestError((err as Error).message);
  }
  const o = parsed.values;
  if (o.help) return { help: true };
  if (o.hook !== undefined && o.command !== undefined) throw new LoadtestError('give --hook or --command, not both');
  const hook = o.command !== undefined ? '$' + o.command.replaceAll('-', '_') : (o.hook ?? 'select_key');
  const seed = numberOption('seed', o.seed, true) ?? 1;
  const parameters = jsonOption('parameters', o.parameters);
  const sandbox = jsonOption('sandbox', o.sandbox) as HookLibraryConfigInput['sandbox'];
  const faults = o.faults !== undefined ? parseFaults(o.faults) : undefined;
  const faultLibrary = faultInjectionLibrary();
  const faultParameters = (extra: Record<string, unknown>) => ({
    ...(hook.startsWith('$') ? { hooks: [], commands: [hook.slice(1).replaceAll('_', '-')] } : { hooks: [hook] }),
    faults: faults ?? {},
    seed,
    ...extra,
  });
  let configuration;
  try {
    configuration = o.config !== undefined ? configurationFromFile(o.config) : generatedConfiguration();
  } catch (err) {
    throw new LoadtestError(err instanceof LoadtestConfigurationError ? err.message : `--config: ${(err as Error).message}`);
  }
  const libraries: HookLibraryConfigInput[] = [];
  if (o.library !== undefined) {
    libraries.push({ library: o.library, parameters, ...(sandbox ? { sandbox } : {}) });
    if (faults) libraries.push({ library: faultLibrary, parameters: faultParameters({}), ...(sandbox ? { sandbox } : {}) });
  } else if (configuration.hooksLibraries.length > 0) {
    // The file's libraries, as the daemon would load them; --sandbox still overrides.
    for (const entry of configuration.hooksLibraries) libraries.push(sandbox ? { ...entry, sandbox: { ...entry.sandbox, ...sandbox } } : entry);
    if (faults) libraries.push({ library: faultLibrary, parameters: faultParameters({}), ...(sandbox ? { sandbox } : {}) });
  } else {
    libraries.push({ library: faultLibrary, parameters: faultParameters(parameters), ...(sandbox ? { sandbox } : {}) });
  }
  const count = numberOption('count', o.count, true);
  const durationS = numberOption('duration', o.duration, false) ?? (count === undefined ? 10 : undefined);
  const concurrency = numberOption('concurrency', o.concurrency, true) ?? 16;
  const intervalMs = numberOption('interval', o.interval, true);
  const policies = (o['compare-sandbox'] ?? []).map((text) => jsonOption('compare-sandbox', text));
  if (policies.length > 0 && !o.compare) throw new LoadtestError('--compare-sandbox goes with --compare');
  if (policies.length > 2) throw new LoadtestError('--compare-sandbox: at most two policies');
  return {
    options: {
      libraries, hook, concurrency, seed, configuration, revive: o.revive === true,
      ...(count !== undefined ? { count } : {}), ...(durationS !== undefined ? { durationS } : {}), ...(intervalMs !== undefined ? { intervalMs } : {}),
    },
    ...(o.report !== undefined ? { reportFile: o.report } : {}),
    ...(o.csv !== undefined ? { csvFile: o.csv } : {}),
    variants: o.compare ? comparisonVariants(policies) : [],
    sandbox: (sandbox ?? {}) as Record<string, unknown>,
    faults: faults ?? null,
    json: o.json === true,
    progress: o['no-progress'] ? false : o.progress ? true : undefined,
    progressIntervalMs: numberOption('progress-interval', o['progress-interval'], true),
    log: o.log === true,
  };
}

/** The subcommand: exit code 0 when the run completed (whatever the library did), 1 on a usage or load error. */
export async function loadtestMain(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseLoadtestArgs(argv);
  } catch (err) {
    process.stderr.write(`loadtest: ${(err as Error).message}\n${LOADTEST_USAGE}`);
    return 1;
  }
  if ('help' in args) {
    process.stdout.write(LOADTEST_USAGE);
    return 0;
  }
  const showProgress = args.progress ?? process.stderr.isTTY === true;
  const tty = process.stderr.isTTY === true;
  const abort = new AbortController();
  const onSignal = () => abort.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let progressShown = false;
  const startedAt = new Date().toISOString();
  try {
    // One run as given, or one per variant, one after the other (never concurrently: they would share the CPU).
    const plan: (LoadtestVariant | null)[] = args.variants.length ? args.variants : [null];
    const runs: LoadtestRun[] = [];
    for (const variant of plan) {
      if (abort.signal.aborted) break;
      const prefix = variant ? `[${variant.name}] ` : '';
      const report = await runLoadtest({
        ...args.options,
        ...(variant ? { libraries: applyVariant(args.options.libraries, variant) } : {}),
        signal: abort.signal,
        ...(args.log ? { onLog: stderrSink } : {}),
        ...(showProgress
          ? {
              progressIntervalMs: args.progressIntervalMs ?? (tty ? 500 : 1000),
              onProgress: (p) => {
                progressShown = true;
                process.stderr.write(tty ? `\r\x1b[K${prefix}${progressLine(p)}` : `${prefix}${progressLine(p)}\n`);
              },
            }
          : {}),
      });
      runs.push({ name: variant?.name ?? isolationOf(args.options.libraries), sandbox: variant?.sandbox ?? args.sandbox, report });
    }
    if (progressShown && tty) process.stderr.write('\r\x1b[K');
    const first = runs[0]!.report;
    const settings: LoadtestSettings = {
      hook: first.hook,
      libraries: first.libraries,
      sandbox: args.sandbox,
      faults: args.faults,
      seed: first.seed,
      concurrency: first.concurrency,
      limits: first.limits,
      intervalMs: first.intervalMs,
      configuration: first.configuration.source,
      startedAt,
      machine: machineDescription(),
    };
    if (args.reportFile !== undefined) writeFileSync(args.reportFile, htmlReport(settings, runs));
    if (args.csvFile !== undefined) writeFileSync(args.csvFile, timelineCsv(runs));
    const comparison: LoadtestComparison = { settings, runs };
    if (args.json) process.stdout.write(`${JSON.stringify(args.variants.length ? comparison : first, null, 2)}\n`);
    else process.stdout.write(args.variants.length ? formatComparison(runs) : formatReport(first));
    return 0;
  } catch (err) {
    if (progressShown && tty) process.stderr.write('\n');
    process.stderr.write(`loadtest: ${(err as Error).message}\n`);
    return 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** A single run's name: its libraries' isolation mode. */
function isolationOf(libraries: HookLibraryConfigInput[]): string {
  const modes = new Set(libraries.map((l) => (l.sandbox as { isolation?: string } | undefined)?.isolation ?? 'thread'));
  return [...modes].join('+');
}

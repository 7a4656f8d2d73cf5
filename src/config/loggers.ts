/**
 * `loggers`: Kea 2.2's LogConfigParser. Keys: name, severity, debuglevel,
 * output_options [{output, flush, maxsize, maxver, pattern}], user-context, comment.
 * Kea 2.2 spells it `output_options` only; `output-options` came in 2.5 and is
 * taken too (both in one logger is refused as an unknown key).
 */
import { z } from 'zod';
import { contextShape, foldComment } from './common.js';

export const SEVERITIES = ['DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL', 'NONE'] as const;
export type Severity = (typeof SEVERITIES)[number];

export const OutputOptionSchema = z
  .object({
    output: z.string({ error: (i) => (i.input === undefined ? "output_options entry does not have a mandatory 'output' element" : undefined) }),
    flush: z.boolean().default(true),
    maxsize: z.int().default(10240000),
    maxver: z.int().default(1),
    pattern: z.string().optional(),
  })
  .strict();
export type OutputOption = z.output<typeof OutputOptionSchema>;

export const LoggerSchema = z
  .preprocess((l) => {
    // Kea 2.5+ also spells it `output-options`; d2box keeps the one internal name.
    if (typeof l !== 'object' || l === null || !('output-options' in l) || 'output_options' in l) return l;
    const { 'output-options': oo, ...rest } = l as Record<string, unknown>;
    return { ...rest, output_options: oo };
  }, z.object({
    name: z.string({ error: (iss) => (iss.input === undefined ? "loggers entry does not have a mandatory 'name' element" : undefined) }),
    severity: z.string({ error: (iss) => (iss.input === undefined ? "loggers entry does not have a mandatory 'severity' element" : undefined) }),
    debuglevel: z.int().refine((n) => n >= 0 && n <= 99, { error: (iss) => `Unsupported debuglevel value '${String(iss.input)}', expected 0-99` }).default(0),
    output_options: z.array(OutputOptionSchema).min(1, 'output_options must not be empty').optional(),
    ...contextShape,
  })
  .strict())
  .transform((l, ctx) => {
    const upper = l.severity.toUpperCase();
    // Kea logs LOG_BAD_SEVERITY and uses INFO for an unknown severity; d2box does the same
    // (parseD2Config reports it as a warning).
    const severity: Severity = (SEVERITIES as readonly string[]).includes(upper) ? (upper as Severity) : 'INFO';
    return { ...foldComment(l, ctx), severity };
  });
export type LoggerConfig = z.output<typeof LoggerSchema>;

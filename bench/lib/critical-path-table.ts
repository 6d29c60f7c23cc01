/**
 * The figures of bench/critical-path.ts and their table: S3 requests on the critical path of each
 * client request type, per registry, with issue #21's per-request targets and whether Berth meets
 * them. Pure (no processes), so bench/run.ts can render what critical-path.ts wrote as JSON.
 */
import type { LatencyModel } from '../s3-counting-proxy.ts';
import { table } from './markdown.ts';

export interface StepFigures {
  /** Median S3 requests on the critical path (before the answer), and their range. */
  sequential: number;
  sequentialMax: number;
  /** Median S3 requests in all, and the median made after the answer. */
  total: number;
  after: number;
  /** Median wall time of the client request, ms. */
  ms: number;
  /** The S3 calls of one (the last) instance, for the trace. */
  ops: string[];
}

export interface CriticalPathSummary {
  latency: LatencyModel | undefined;
  repeat: number;
  targets: { name: string; steps: Record<string, StepFigures> }[];
}

/** The names critical-path.ts gives its registries. */
export const BERTH_SERVE = 'Berth serve';
export const BERTH_LAMBDA = 'Berth Lambda (gateway)';

/** The two requests of a monolithic upload without ?digest on the POST, counted as one upload. */
export const POST_THEN_PUT = 'POST + PUT ?digest with the bytes (together)';

/**
 * Issue #21's limit on sequential S3 requests for a client request type (critical-path.ts's step
 * names), and which target it is; undefined where the issue sets none (a POST that opens a session
 * on its own, a mount).
 */
export function targetOf(step: string): { max: number; what: string } | undefined {
  if (/^(HEAD|GET) /.test(step)) return { max: 1, what: 'every read route' };
  if (step.startsWith('POST ?digest') || step === POST_THEN_PUT) return { max: 2, what: 'monolithic upload' };
  if (step.startsWith('PATCH')) return { max: 2, what: 'PATCH' };
  // After one whole-blob PATCH as well as after chunks: both complete an upload the client streamed.
  if (step.startsWith('PUT ?digest (after')) return { max: 2, what: 'completion of a chunked upload' };
  if (step === 'PUT ?digest with the bytes') return { max: 2, what: 'monolithic upload' };
  if (step.startsWith('PUT manifest')) return { max: 3, what: 'manifest PUT' };
  return undefined;
}

/**
 * The summary's steps plus the derived one: POST upload and PUT ?digest with the bytes, whose
 * sequential requests add up (the client waits for one before it sends the other).
 */
export function withDerivedSteps(steps: Record<string, StepFigures>): Record<string, StepFigures> {
  const post = steps['POST upload'];
  const put = steps['PUT ?digest with the bytes'];
  if (!post || !put) return steps;
  return {
    ...steps,
    [POST_THEN_PUT]: {
      sequential: post.sequential + put.sequential,
      sequentialMax: post.sequentialMax + put.sequentialMax,
      total: post.total + put.total,
      after: post.after + put.after,
      ms: post.ms + put.ms,
      ops: [...post.ops, ...put.ops],
    },
  };
}

/** Whether a registry's figures meet a step's target ("yes"/"no"; "" without a target or figures). */
export function meets(step: string, f: StepFigures | undefined): string {
  const target = targetOf(step);
  if (!target || !f) return '';
  return f.sequential <= target.max ? 'yes' : '**no**';
}

/**
 * One row per client request type: each registry's "sequential / total / ms" (a range when the
 * repetitions differed, "(n after)" for requests made after the answer), the target, and yes/no
 * for each Berth registry.
 */
export function renderCriticalPath(summary: CriticalPathSummary): string {
  const targets = summary.targets.map((t) => ({ ...t, steps: withDerivedSteps(t.steps) }));
  const names = [...new Set(targets.flatMap((t) => Object.keys(t.steps)))];
  const berths = targets.filter((t) => t.name.startsWith('Berth'));
  const cell = (f: StepFigures | undefined) =>
    f
      ? `${f.sequential}${f.sequentialMax !== f.sequential ? `–${f.sequentialMax}` : ''} / ${f.total}${f.after ? ` (${f.after} after)` : ''} / ${f.ms.toFixed(0)}`
      : '-';
  return table(
    [
      'client request',
      ...targets.map((t) => `${t.name}: seq / total / ms`),
      'target (seq)',
      ...berths.map((t) => `met: ${t.name}`),
    ],
    names.map((n) => {
      const target = targetOf(n);
      return [
        n,
        ...targets.map((t) => cell(t.steps[n])),
        target ? `<= ${target.max}` : '-',
        ...berths.map((t) => meets(n, t.steps[n]) || '-'),
      ];
    }),
  );
}

import type { LoginEvent } from '../auth/accounts.ts';
import type { FsckReport } from '../fsck/report.ts';
import { matchRoute } from '../http/route.ts';

export interface RequestMetrics {
  readonly method: string;
  readonly rawPath: string;
  readonly status: number;
  readonly latencyMs: number;
  /** Body bytes that passed through the function (a redirect passes none: S3 serves them). */
  readonly responseBytes: number;
}

const NAMESPACE = 'Berth';

/**
 * One CloudWatch embedded-metric-format line per request: CloudWatch turns the log line into
 * metrics without a PutMetricData call (which would cost latency and an API request each time).
 * Dimensions stay low-cardinality: the route kind, never the repository name.
 */
export function metricLine(m: RequestMetrics, fields: Record<string, unknown> = {}): string {
  const route = matchRoute(m.rawPath)?.kind ?? 'unmatched';
  const redirected = m.status === 307 && route === 'blob' ? 1 : 0;
  return JSON.stringify({
    _aws: {
      Timestamp: Date.now(),
      CloudWatchMetrics: [
        {
          Namespace: NAMESPACE,
          Dimensions: [['route', 'status'], ['route']],
          Metrics: [
            { Name: 'Requests', Unit: 'Count' },
            { Name: 'Latency', Unit: 'Milliseconds' },
            { Name: 'StreamedBytes', Unit: 'Bytes' },
            { Name: 'RedirectedBlobs', Unit: 'Count' },
          ],
        },
      ],
    },
    ...fields,
    route,
    status: String(m.status),
    method: m.method,
    Requests: 1,
    Latency: Math.round(m.latencyMs * 10) / 10,
    StreamedBytes: m.responseBytes,
    RedirectedBlobs: redirected,
  });
}

/**
 * One embedded-metric line per failed or refused login: `LoginFailures` (a password check that
 * failed) and `LoginsThrottled` (an attempt refused without a check), by `reason` (`wrong password`,
 * `unknown account`, `expired`; `account` or `source` for what was locked) and in total. The source
 * address is a property of the line, searchable in Logs Insights, not a dimension.
 */
export function loginMetricLine(event: LoginEvent, fields: Record<string, unknown> = {}): string {
  return JSON.stringify({
    _aws: {
      Timestamp: Date.now(),
      CloudWatchMetrics: [
        {
          Namespace: NAMESPACE,
          Dimensions: [['reason'], []],
          Metrics: [
            { Name: 'LoginFailures', Unit: 'Count' },
            { Name: 'LoginsThrottled', Unit: 'Count' },
          ],
        },
      ],
    },
    ...fields,
    reason: event.reason,
    source: event.source,
    LoginFailures: event.kind === 'failure' ? 1 : 0,
    LoginsThrottled: event.kind === 'throttled' ? 1 : 0,
  });
}

/**
 * The janitor's check of the store (docs/fsck.md, "On AWS"): one embedded-metric line with the
 * findings by severity (`FsckBroken`, `FsckInconsistent`, `FsckLeftovers`, `FsckLeftoverBytes`) and
 * whether every check ran (`FsckComplete`), then one line per kind found (`FsckFindings` by `kind`:
 * a couple of dozen values at most). An alarm on `FsckBroken` > 0 says an image stopped pulling.
 */
export function fsckMetricLines(report: FsckReport, fields: Record<string, unknown> = {}): string[] {
  const lines = [
    JSON.stringify({
      _aws: {
        Timestamp: Date.now(),
        CloudWatchMetrics: [
          {
            Namespace: NAMESPACE,
            Dimensions: [[]],
            Metrics: [
              { Name: 'FsckBroken', Unit: 'Count' },
              { Name: 'FsckInconsistent', Unit: 'Count' },
              { Name: 'FsckLeftovers', Unit: 'Count' },
              { Name: 'FsckLeftoverBytes', Unit: 'Bytes' },
              { Name: 'FsckComplete', Unit: 'Count' },
            ],
          },
        ],
      },
      ...fields,
      FsckBroken: report.counts.broken,
      FsckInconsistent: report.counts.inconsistent,
      FsckLeftovers: report.counts.leftover,
      FsckLeftoverBytes: report.leftoverBytes,
      FsckComplete: report.complete ? 1 : 0,
    }),
  ];
  const byKind = new Map<string, { severity: string; count: number }>();
  for (const f of report.findings) {
    const entry = byKind.get(f.kind) ?? { severity: f.severity, count: 0 };
    entry.count++;
    byKind.set(f.kind, entry);
  }
  for (const [kind, { severity, count }] of byKind) {
    lines.push(
      JSON.stringify({
        _aws: {
          Timestamp: Date.now(),
          CloudWatchMetrics: [
            {
              Namespace: NAMESPACE,
              Dimensions: [['kind']],
              Metrics: [{ Name: 'FsckFindings', Unit: 'Count' }],
            },
          ],
        },
        ...fields,
        kind,
        severity,
        FsckFindings: count,
      }),
    );
  }
  return lines;
}

// Writes a Markdown summary of a client e2e run: the client versions that were tested and, per
// scenario, passed/failed/skipped (with the skip reason or the first line of the failure).
// Printed at the end of the run and written to BERTH_E2E_REPORT (default <tmp>/berth-e2e-report.md).
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Reporter, TestCase, TestModule } from 'vitest/node';

function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\s+/g, ' ').trim().slice(0, 160);
}

export default class ClientReport implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    const lines: string[] = [];
    let versions: Record<string, string> | undefined;
    let unavailable: Record<string, string> = {};
    const counts = { passed: 0, failed: 0, skipped: 0, pending: 0 };
    const rows: string[] = [];
    for (const m of modules) {
      // A failed beforeAll leaves its tests "skipped" without a note: report the suite itself.
      for (const suite of [m, ...m.children.allSuites()]) {
        const errors = suite.errors();
        if (errors.length) {
          counts.failed++;
          const name =
            suite.type === 'module' ? suite.moduleId : suite.fullName.split(' > ').slice(1).join(' › ');
          rows.push(
            `| ${cell(name)} | (setup of the suite) | failed | | ${cell(errors[0]?.message.split('\n')[0] ?? '')} |`,
          );
        }
      }
      for (const test of m.children.allTests()) {
        const t = test as TestCase;
        const meta = t.meta() as { versions?: Record<string, string>; unavailable?: Record<string, string> };
        if (meta.versions) {
          versions = meta.versions;
          unavailable = meta.unavailable ?? {};
        }
        const r = t.result();
        // Left out by a -t/--testNamePattern filter (or .skip in code): not part of this run.
        if (r.state === 'skipped' && r.note === undefined && t.options.mode === 'skip') continue;
        counts[r.state]++;
        const why =
          r.state === 'skipped'
            ? (r.note ?? '')
            : r.state === 'failed'
              ? (r.errors[0]?.message ?? '').split('\n')[0]!
              : t
                  .annotations()
                  .map((a) => a.message)
                  .join('; ');
        const ms = t.diagnostic()?.duration;
        const suite = t.fullName.split(' > ');
        rows.push(
          `| ${cell(suite.slice(1, -1).join(' › '))} | ${cell(t.name)} | ${r.state} | ${ms === undefined ? '' : (ms / 1000).toFixed(1) + ' s'} | ${cell(why)} |`,
        );
      }
    }
    const title = modules[0]?.children.array()[0];
    lines.push(`# Client e2e: ${title && 'name' in title ? title.name : 'run'}`, '');
    if (versions) {
      lines.push('| client | version |', '| --- | --- |');
      for (const [k, v] of Object.entries(versions)) lines.push(`| ${k} | ${cell(v)} |`);
      for (const [k, v] of Object.entries(unavailable)) lines.push(`| ${k} | unavailable: ${cell(v)} |`);
      lines.push('');
    }
    lines.push(`${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped`, '');
    lines.push('| scenario | test | result | time | note |', '| --- | --- | --- | --- | --- |', ...rows, '');
    const file = process.env.BERTH_E2E_REPORT ?? path.join(os.tmpdir(), 'berth-e2e-report.md');
    writeFileSync(file, lines.join('\n'));
    console.log(`\n${lines.join('\n')}\n[e2e] report written to ${file}`);
  }
}

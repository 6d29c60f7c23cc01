import { describe, expect, it } from 'vitest';
import { targetOf, withDerivedSteps, type StepFigures } from '../../bench/lib/critical-path-table.ts';
import { targets21, type Results, type TransferRow } from '../../bench/lib/report.ts';

const MiB = 1024 * 1024;

const fig = (sequential: number): StepFigures => ({
  sequential,
  sequentialMax: sequential,
  total: sequential,
  after: 0,
  ms: sequential * 25,
  ops: [],
});

/** A transfer row of `bytes` whose runs took `seconds` each, with `cpu` server seconds per run. */
const row = (
  over: Partial<TransferRow> & Pick<TransferRow, 'kind' | 'store' | 'workload'>,
  seconds: number,
  cpu = 1,
) =>
  ({
    client: 'skopeo',
    bytes: 100 * MiB,
    command: 'skopeo copy',
    samples: [{ value: seconds, cpuSeconds: cpu, peakRssMiB: 100 }],
    ...over,
  }) as TransferRow;

const empty = (): Results => ({
  quick: false,
  command: 'npm run bench',
  machine: {},
  transfers: [],
  loads: [],
  lambda: undefined,
  s3: [],
});

describe('targetOf', () => {
  it("gives each of critical-path.ts's request types the issue's limit", () => {
    expect(targetOf('GET manifest by tag')?.max).toBe(1);
    expect(targetOf('HEAD blob (absent)')?.max).toBe(1);
    expect(targetOf('POST ?digest (monolithic)')?.max).toBe(2);
    expect(targetOf('PUT ?digest with the bytes')?.max).toBe(2);
    expect(targetOf('PATCH (next chunk)')?.max).toBe(2);
    expect(targetOf('PUT ?digest (after chunks)')?.max).toBe(2);
    expect(targetOf('PUT manifest (10 layers, new)')?.max).toBe(3);
    expect(targetOf('POST upload')).toBeUndefined();
    expect(targetOf('POST ?mount&from')).toBeUndefined();
  });

  it('adds POST and PUT with the bytes up as one monolithic upload', () => {
    const steps = withDerivedSteps({ 'POST upload': fig(1), 'PUT ?digest with the bytes': fig(2) });
    const together = Object.entries(steps).find(([name]) => name.startsWith('POST + PUT'));
    expect(together?.[1].sequential).toBe(3);
    expect(targetOf(together![0])?.max).toBe(2);
  });
});

describe('targets21', () => {
  it('computes the realistic-latency ratio against 1.5, for Berth and for its Lambda path', () => {
    const res = empty();
    const workload = 'push typical image';
    res.transfers.push(
      row({ kind: 'berth', store: 's3-aws', workload }, 10),
      row({ kind: 'berth', store: 's3-aws', workload, path: 'lambda' }, 14),
      row({ kind: 'distribution', store: 's3-aws', workload }, 20),
    );
    const t = targets21(res).filter((x) => x.target.includes('ratio >= 1.5'));
    expect(t.map((x) => [x.measured.split(' ')[0], x.met])).toEqual([
      ['2.00', true],
      ['1.43', false],
    ]);
  });

  it("names a pull's bound beside its ratio, and never takes the bound for Berth's own pull", () => {
    const res = empty();
    const workload = 'pull typical image';
    res.transfers.push(
      row({ kind: 'berth', store: 's3-aws', workload }, 10),
      row({ kind: 'berth', store: 's3-aws', workload, path: 'bound' }, 8.8),
      row({ kind: 'berth', store: 's3-aws', workload, path: 'lambda' }, 12),
      row({ kind: 'distribution', store: 's3-aws', workload }, 11),
    );
    const t = targets21(res).filter((x) => x.target.includes('ratio >= 1.5'));
    expect(t.map((x) => [x.measured.split(' ')[0], x.measured.split('; ')[1], x.met])).toEqual([
      ['1.10', 'bound 1.25', false],
      ['0.92', 'bound 1.25', false],
    ]);
  });

  it('holds small-layer filesystem pushes to 1.2 and CPU per GiB to no more than Distribution', () => {
    const res = empty();
    const workload = 'push 32 layers of 128 KiB';
    res.transfers.push(
      row({ kind: 'berth', store: 'fs', workload }, 10, 2),
      row({ kind: 'distribution', store: 'fs', workload }, 11, 1.5),
    );
    const t = targets21(res);
    expect(t.find((x) => x.target.includes('small-layer'))?.met).toBe(false); // 1.1
    expect(t.find((x) => x.target.includes('CPU-s/GiB'))?.met).toBe(false); // 20 vs 15
  });

  it('judges the cold start against 70 ms', () => {
    const res = empty();
    res.coldStart = { command: 'x', node: 'Node v22', initMs: 69.9, firstRequestMs: 5 };
    expect(targets21(res).find((x) => x.target.startsWith('cold start'))?.met).toBe(true);
    res.coldStart.initMs = 70;
    expect(targets21(res).find((x) => x.target.startsWith('cold start'))?.met).toBe(false);
  });

  it("names the critical path's request types over their limit, for each Berth registry", () => {
    const res = empty();
    const steps = {
      'GET manifest by tag': fig(1),
      'HEAD blob (present)': fig(1),
      'PATCH (whole blob)': fig(4),
      'PATCH (next chunk)': fig(2),
      'PUT manifest (10 layers, new)': fig(3),
    };
    res.criticalPath = {
      command: 'x',
      summary: {
        latency: undefined,
        repeat: 1,
        targets: [
          { name: 'Berth serve', steps },
          { name: 'Distribution + cache', steps: { 'PATCH (whole blob)': fig(9) } },
        ],
      },
    };
    const t = targets21(res);
    expect(t.map((x) => [x.target, x.met])).toEqual([
      ['critical path, Berth serve: every read route <= 1 sequential S3 requests', true],
      ['critical path, Berth serve: PATCH <= 2 sequential S3 requests', false],
      ['critical path, Berth serve: manifest PUT <= 3 sequential S3 requests', true],
    ]);
    expect(t[1]!.measured).toBe('PATCH (whole blob): 4');
  });
});

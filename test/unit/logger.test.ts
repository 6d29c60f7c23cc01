import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger, describeError, type LogLevel } from '../../lib/logging/logger.ts';
import { RegistryError } from '../../lib/oci/errors.ts';

function capture(level: LogLevel, base?: Record<string, unknown>) {
  const lines: string[] = [];
  const logger = createLogger(level, base, (line) => lines.push(line));
  const records = () => lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  return { logger, lines, records };
}

describe('createLogger', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('writes one JSON object per line to stdout by default', () => {
    const written: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      written.push(String(chunk));
      return true;
    });
    const logger = createLogger('info');
    logger.info('first', { n: 1 });
    logger.warn('second\nwith a newline', { text: 'a\nb' });
    const output = written.join('');
    expect(output.endsWith('\n')).toBe(true);
    const lines = output.slice(0, -1).split('\n');
    expect(lines).toHaveLength(2);
    const [first, second] = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(first).toMatchObject({ level: 'info', msg: 'first', n: 1 });
    expect(second).toMatchObject({ level: 'warn', msg: 'second\nwith a newline', text: 'a\nb' });
  });

  it('stamps each record with an ISO time, its level and message', () => {
    const { logger, records } = capture('debug');
    const before = Date.now();
    logger.error('boom');
    const [record] = records();
    expect(Object.keys(record!).slice(0, 3)).toEqual(['time', 'level', 'msg']);
    expect(record).toMatchObject({ level: 'error', msg: 'boom' });
    const time = Date.parse(record!.time as string);
    expect(new Date(time).toISOString()).toBe(record!.time);
    expect(time).toBeGreaterThanOrEqual(before - 1);
    expect(time).toBeLessThanOrEqual(Date.now() + 1);
  });

  it.each([
    ['debug', ['debug', 'info', 'warn', 'error']],
    ['info', ['info', 'warn', 'error']],
    ['warn', ['warn', 'error']],
    ['error', ['error']],
    ['silent', []],
  ] as [LogLevel, string[]][])('at level %s writes %j', (level, expected) => {
    const { logger, records } = capture(level);
    logger.debug('d');
    logger.info('i');
    logger.warn('w');
    logger.error('e');
    expect(records().map((r) => r.level)).toEqual(expected);
  });

  it('filters children at the parent level', () => {
    const { logger, records } = capture('warn');
    const child = logger.child({ requestId: 'r1' });
    child.info('hidden');
    child.warn('shown');
    expect(records().map((r) => r.msg)).toEqual(['shown']);
  });

  it('merges base, child and call fields, the most specific winning', () => {
    const { logger, records } = capture('info', { service: 'berth', scope: 'base' });
    const child = logger.child({ requestId: 'r1', scope: 'child' });
    const grandchild = child.child({ repo: 'library/ubuntu' });
    grandchild.info('request', { status: 200, scope: 'call' });
    child.info('child only');
    logger.info('parent only');
    const [fromGrandchild, fromChild, fromParent] = records();
    expect(fromGrandchild).toMatchObject({
      msg: 'request',
      service: 'berth',
      requestId: 'r1',
      repo: 'library/ubuntu',
      status: 200,
      scope: 'call',
    });
    expect(fromChild).toMatchObject({ service: 'berth', requestId: 'r1', scope: 'child' });
    expect(fromChild).not.toHaveProperty('repo');
    expect(fromParent).toMatchObject({ service: 'berth', scope: 'base' });
    expect(fromParent).not.toHaveProperty('requestId');
  });
});

describe('describeError', () => {
  it('carries the error kind and message, never a stack', () => {
    const err = new TypeError('bad thing');
    const fields = describeError(err);
    expect(fields).toEqual({ error: 'TypeError', errorMessage: 'bad thing' });
    expect(JSON.stringify(fields)).not.toContain(' at ');
    expect(JSON.stringify(fields)).not.toContain(err.stack!.split('\n')[1]!.trim());
  });

  it('names registry errors by their class', () => {
    expect(describeError(new RegistryError('BLOB_UNKNOWN', 'no such blob'))).toEqual({
      error: 'RegistryError',
      errorMessage: 'no such blob',
    });
  });

  it('cuts long messages to 500 characters', () => {
    const fields = describeError(new Error('x'.repeat(10_000)));
    expect(fields.errorMessage).toHaveLength(500);
  });

  it('logs only the type of a thrown non-Error, not its content', () => {
    expect(describeError('password=hunter2')).toEqual({ error: 'string' });
    expect(describeError({ secret: 'hunter2' })).toEqual({ error: 'object' });
    expect(describeError(undefined)).toEqual({ error: 'undefined' });
    expect(describeError(null)).toEqual({ error: 'object' });
  });

  it('is what the logger writes for an error, on one line', () => {
    const { logger, lines } = capture('info');
    logger.error('unexpected error', describeError(new Error('line one\nline two')));
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toContain('\n');
    expect(JSON.parse(lines[0]!)).toMatchObject({ error: 'Error', errorMessage: 'line one\nline two' });
  });
});

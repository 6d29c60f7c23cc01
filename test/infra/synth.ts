import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FUNCTIONS } from '../../build/bundle.ts';
import type { BerthProps } from '../../infra/props.ts';
import { BerthStack } from '../../infra/stack.ts';

/**
 * Placeholder bundles (one tiny index.mjs per function): the stack only needs the directories to
 * hash and package, so the tests need no `npm run build`.
 */
export function placeholderBundles(): string {
  const dir = mkdtempSync(join(tmpdir(), 'berth-infra-'));
  for (const name of FUNCTIONS) {
    mkdirSync(join(dir, name));
    writeFileSync(join(dir, name, 'index.mjs'), `export const handler = async () => '${name}';\n`);
  }
  return dir;
}

const bundlesDir = placeholderBundles();

/** A fixed clock, so the TTL variants have a known expiry. */
export const NOW = new Date('2026-11-28T10:00:30Z');

export function synth(props: Partial<BerthProps> = {}): { stack: BerthStack; template: Template } {
  // No construct stack traces: they are most of a synthesis' time, and the assertions need none.
  const app = new App({ stackTraces: false, analyticsReporting: false });
  const stack = new BerthStack(app, `berth-${props.team ?? 'payments'}`, {
    team: 'payments',
    bundlesDir,
    now: NOW,
    ...props,
  });
  return { stack, template: Template.fromStack(stack) };
}

/** Every resource of a type, by logical id. */
export function resources(
  template: Template,
  type: string,
): Record<string, { Properties: Record<string, unknown> }> {
  return template.findResources(type) as Record<string, { Properties: Record<string, unknown> }>;
}

/** The logical id of the one resource of a type whose id starts with `prefix`. */
export function logicalId(template: Template, type: string, prefix: string): string {
  const ids = Object.keys(template.findResources(type)).filter((id) => id.startsWith(prefix));
  if (ids.length !== 1) throw new Error(`expected one ${type} ${prefix}*, found ${ids.join(', ') || 'none'}`);
  return ids[0]!;
}

import * as z from 'zod';
import { matchesPattern } from '../auth/grants.ts';

/** A repository pattern as in grants: a name where `*` matches any run of characters, `/` included. */
const repositoryPattern = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[a-z0-9._/*-]+$/, 'a repository pattern is lowercase letters, digits, . _ / - and *');

const tagPattern = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9_.*-]+$/, 'a tag pattern is letters, digits, _ . - and *');

/**
 * One retention rule (docs/gc.md). The first rule whose `repositories` pattern matches a repository
 * applies to it; repositories no rule matches keep every tag.
 */
export const retentionRuleSchema = z
  .object({
    repositories: repositoryPattern,
    /** The newest N tags (by last push), not counting those `keepTags` keeps, are never deleted. */
    keepLast: z.number().int().min(0).optional(),
    /** Tags last pushed longer ago than this are deleted (unless kept). Without it, `keepLast` alone deletes the rest. */
    deleteOlderThanDays: z.number().positive().optional(),
    /** Tags matching any of these patterns are always kept (`v*`, `latest`). */
    keepTags: z.array(tagPattern).max(100).optional(),
    /** Manifests no tag reaches are deleted once they are this old (like `--delete-untagged`, per repository). */
    untaggedAfterDays: z.number().min(0).optional(),
  })
  .strict();

export type RetentionRule = z.infer<typeof retentionRuleSchema>;

export const retentionSchema = z.array(retentionRuleSchema).max(1000);

/** Parses `BERTH_RETENTION` (or the file's) JSON text; throws with messages that name the field. */
export function parseRetention(text: string): RetentionRule[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error('retention rules must be JSON: an array of {"repositories": "<pattern>", ...}');
  }
  const parsed = retentionSchema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || 'rules'}: ${i.message}`);
    throw new Error(`invalid retention rules: ${problems.join('; ')}`);
  }
  return parsed.data;
}

/** The rule that applies to `repo`: the first that matches. */
export function retentionFor(rules: readonly RetentionRule[], repo: string): RetentionRule | undefined {
  return rules.find((rule) => matchesPattern(rule.repositories, repo));
}

/** Tags that can never be re-pointed at another manifest: `<repository pattern>[:<tag pattern>]`. */
export interface ImmutableRule {
  readonly repositories: string;
  /** Absent: every tag of the matching repositories. */
  readonly tags?: string;
}

/**
 * Parses `BERTH_IMMUTABLE_TAGS`: comma-separated `<repository pattern>[:<tag pattern>]`, e.g.
 * `prod/*,team-a/*:v*`. Repository names cannot hold `:`, so the first one separates the tag pattern.
 */
export function parseImmutableTags(text: string): ImmutableRule[] {
  return text
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '')
    .map((entry) => {
      const colon = entry.indexOf(':');
      const repositories = colon < 0 ? entry : entry.slice(0, colon);
      const tags = colon < 0 ? undefined : entry.slice(colon + 1);
      const repo = repositoryPattern.safeParse(repositories);
      const tag = tags === undefined ? undefined : tagPattern.safeParse(tags);
      if (!repo.success || (tag && !tag.success)) {
        throw new Error(
          `immutable tag rule "${entry.slice(0, 300)}" must look like <repository pattern>[:<tag pattern>], e.g. 'prod/*' or 'team-a/*:v*'`,
        );
      }
      return tags === undefined ? { repositories } : { repositories, tags };
    });
}

/** The rule that makes `tag` of `repo` immutable, if any. */
export function immutableRuleFor(
  rules: readonly ImmutableRule[],
  repo: string,
  tag: string,
): ImmutableRule | undefined {
  return rules.find(
    (rule) =>
      matchesPattern(rule.repositories, repo) && (rule.tags === undefined || matchesTag(rule.tags, tag)),
  );
}

export function matchesTag(pattern: string, tag: string): boolean {
  return matchesPattern(pattern, tag);
}

export function describeImmutableRule(rule: ImmutableRule): string {
  return rule.tags === undefined ? rule.repositories : `${rule.repositories}:${rule.tags}`;
}

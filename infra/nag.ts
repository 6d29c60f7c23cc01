import { Stack, Validations, type CfnResource } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';
import type { BerthStack } from './stack.ts';
import { JANITOR_ACCESS, REGISTRY_ACCESS, type StorageAccess } from './storage-access.ts';

const PREFIXES_REASON =
  'Object keys under the storage layout prefixes this function uses (docs/architecture.md, "Storage layout"; infra/storage-access.ts): they are made of digests, repository names and upload ids known only at run time, so IAM can only name their prefix.';
const PROVIDER_REASON =
  "The custom resource framework function may invoke its one handler function, by ARN and qualifiers (`<arn>:*`), as aws-cdk-lib's Provider grants; no other function.";
const RUNTIME_REASON =
  'nodejs22.x is the runtime the bundles are built for (esbuild target node22) and tested under (test/e2e/node22.sh); a newer runtime is adopted when the bundle tests run under it.';

/**
 * The cdk-nag AwsSolutions findings this stack accepts, each with its reason; everything else fails
 * `cdk synth` and test/infra/nag.test.ts. See docs/deployment.md, "Security checks".
 */
export function acknowledgeFindings(stack: BerthStack): void {
  const ack = (scope: IConstruct, id: string, reason: string) =>
    Validations.of(scope).acknowledge({ id: `AwsSolutions-${id}`, reason });
  const bucket = logicalId(stack.storage.bucket.node.defaultChild as CfnResource);
  const prefixFindings = (scope: IConstruct, access: StorageAccess) => {
    const prefixes = new Set([...access.read, ...access.write, ...access.delete, ...access.multipart]);
    for (const p of prefixes) ack(scope, `IAM5[Resource::<${bucket}.Arn>/${p}*]`, PREFIXES_REASON);
  };
  prefixFindings(stack.registry, REGISTRY_ACCESS);
  prefixFindings(stack.verifier, REGISTRY_ACCESS);
  prefixFindings(stack.janitor, JANITOR_ACCESS);

  for (const fn of [
    stack.registry,
    stack.verifier,
    stack.janitor,
    stack.web,
    stack.auth.bootstrap,
    stack.teardown?.function,
  ]) {
    if (fn) ack(fn, 'L1', RUNTIME_REASON);
  }
  ack(
    stack.auth,
    `IAM5[Resource::<${logicalId(stack.auth.bootstrap.fn.node.defaultChild as CfnResource)}.Arn>:*]`,
    PROVIDER_REASON,
  );
  ack(
    stack.http,
    'APIG4',
    "Authentication is the registry's own: Docker token auth, which OCI clients speak and no API Gateway authorizer type does. Every /v2/ route answers 401 with a Bearer challenge unless the token grants the action; /token checks the credentials (throttled separately). The web UI's routes (GET / and GET /ui/{proxy+}) serve the page's static files, which hold no data: the page reads everything through /v2/ with the signed-in account's tokens.",
  );
  ack(
    stack.storage,
    'S1',
    'No S3 server access logs: every API request is in the API access log and the function log, and blob downloads are presigned URLs the registry issued (logged as the 307 that carried them). Turn on CloudTrail data events for the bucket where each S3 read must be audited.',
  );
  if (stack.teardown) {
    ack(
      stack.teardown.function,
      `IAM5[Resource::<${bucket}.Arn>/*]`,
      'Emptying the bucket before CloudFormation deletes it must remove every object and upload in it; the bucket belongs to this stack alone.',
    );
    ack(
      stack.teardown,
      `IAM5[Resource::<${logicalId(stack.teardown.function.fn.node.defaultChild as CfnResource)}.Arn>:*]`,
      PROVIDER_REASON,
    );
  }
}

function logicalId(resource: CfnResource): string {
  const stack = Stack.of(resource);
  return stack.resolve(stack.getLogicalId(resource)) as string;
}

/**
 * The SSM operations Berth uses, as one module that callers load with `import()` when they first
 * need it. Named imports let esbuild keep only these commands: a dynamic import of the package
 * itself would bundle all of its several hundred.
 */
export {
  DeleteParametersCommand,
  DescribeParametersCommand,
  GetParameterCommand,
  PutParameterCommand,
  SSMClient,
} from '@aws-sdk/client-ssm';

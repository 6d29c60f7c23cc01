import { Duration } from 'aws-cdk-lib';
import type { HttpApi } from 'aws-cdk-lib/aws-apigatewayv2';
import {
  Alarm,
  ComparisonOperator,
  MathExpression,
  Stats,
  TreatMissingData,
  type IMetric,
} from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import type { Function } from 'aws-cdk-lib/aws-lambda';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';

export interface RegistryAlarmsProps {
  readonly api: HttpApi;
  readonly registry: Function;
  /** Functions whose errors and near-timeouts alarm: the registry, the janitor, the teardown (with a TTL)... */
  readonly functions: readonly Function[];
  readonly alarmEmail?: string;
}

const PERIOD = Duration.minutes(5);
/** A 5xx rate above this share of requests, over at least MIN_REQUESTS requests in five minutes. */
export const SERVER_ERROR_PERCENT = 5;
const MIN_REQUESTS = 20;
/** "Near the timeout": a run longer than this share of the function's timeout. */
export const NEAR_TIMEOUT = 0.8;

/**
 * The registry's alarms: 5xx rate at the API, registry throttles, function errors, runs near their
 * timeout. Wired to an SNS topic (e-mail) when one is asked for.
 */
export class RegistryAlarms extends Construct {
  readonly topic?: Topic;
  readonly alarms: Alarm[] = [];

  constructor(scope: Construct, id: string, props: RegistryAlarmsProps) {
    super(scope, id);
    if (props.alarmEmail) {
      this.topic = new Topic(this, 'Topic', { displayName: 'Berth registry alarms', enforceSSL: true });
      this.topic.addSubscription(new EmailSubscription(props.alarmEmail));
    }

    const requests = props.api.metricCount({ period: PERIOD, statistic: Stats.SUM });
    const serverErrors = props.api.metricServerError({ period: PERIOD, statistic: Stats.SUM });
    this.add('ServerErrorRate', {
      description: `More than ${SERVER_ERROR_PERCENT}% of requests answered 5xx (of at least ${MIN_REQUESTS} in 5 minutes)`,
      metric: new MathExpression({
        expression: `IF(requests >= ${MIN_REQUESTS}, 100 * errors / requests, 0)`,
        usingMetrics: { requests, errors: serverErrors },
        period: PERIOD,
        label: '5xx %',
      }),
      threshold: SERVER_ERROR_PERCENT,
      evaluationPeriods: 2,
    });

    this.add('Throttles', {
      description: 'The registry function was throttled (concurrency limit reached): clients got 5xx',
      metric: props.registry.metricThrottles({ period: PERIOD, statistic: Stats.SUM }),
      threshold: 0,
      evaluationPeriods: 1,
    });

    const errors: Record<string, IMetric> = {};
    const nearTimeout: string[] = [];
    const durations: Record<string, IMetric> = {};
    props.functions.forEach((fn, i) => {
      errors[`e${i}`] = fn.metricErrors({ period: PERIOD, statistic: Stats.SUM });
      durations[`d${i}`] = fn.metricDuration({ period: PERIOD, statistic: Stats.MAXIMUM });
      nearTimeout.push(`d${i} / ${fn.timeout?.toMilliseconds() ?? 3000}`);
    });
    this.add('FunctionErrors', {
      description: 'A Berth function failed (unhandled error): see its log group',
      metric: new MathExpression({
        expression: Object.keys(errors).join(' + '),
        usingMetrics: errors,
        period: PERIOD,
        label: 'errors',
      }),
      threshold: 0,
      evaluationPeriods: 1,
    });
    this.add('NearTimeout', {
      description: `A Berth function ran longer than ${NEAR_TIMEOUT * 100}% of its timeout`,
      metric: new MathExpression({
        expression: nearTimeout.length === 1 ? nearTimeout[0]! : `MAX([${nearTimeout.join(', ')}])`,
        usingMetrics: durations,
        period: PERIOD,
        label: 'duration / timeout',
      }),
      threshold: NEAR_TIMEOUT,
      evaluationPeriods: 1,
    });
  }

  private add(
    id: string,
    props: { description: string; metric: IMetric; threshold: number; evaluationPeriods: number },
  ): void {
    const alarm = new Alarm(this, id, {
      alarmDescription: props.description,
      metric: props.metric,
      threshold: props.threshold,
      evaluationPeriods: props.evaluationPeriods,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
    if (this.topic) {
      alarm.addAlarmAction(new SnsAction(this.topic));
      alarm.addOkAction(new SnsAction(this.topic));
    }
    this.alarms.push(alarm);
  }
}

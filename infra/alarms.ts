import { Duration } from 'aws-cdk-lib';
import type { HttpApi } from 'aws-cdk-lib/aws-apigatewayv2';
import {
  Alarm,
  ComparisonOperator,
  MathExpression,
  Metric,
  Stats,
  TreatMissingData,
  type IMetric,
} from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import type { Function } from 'aws-cdk-lib/aws-lambda';
import { Topic, type ITopic } from 'aws-cdk-lib/aws-sns';
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';

export interface RegistryAlarmsProps {
  readonly api: HttpApi;
  /** Functions no client waits on, whose failures nobody would otherwise see: janitor, verifier, teardown (with a TTL). */
  readonly background: readonly Function[];
  /** A new SNS topic (TLS-only) with this e-mail subscribed. */
  readonly alarmEmail?: string;
  /** An existing SNS topic (a team's pager), in the stack's account and region. */
  readonly alarmTopicArn?: string;
}

const PERIOD = Duration.minutes(5);
/** A 5xx rate above this share of requests, over at least MIN_REQUESTS requests in five minutes. */
export const SERVER_ERROR_PERCENT = 5;
const MIN_REQUESTS = 20;

/**
 * The alarms that page someone, created only when there is someone to page (an e-mail or a topic;
 * each alarm metric costs $0.10 a month):
 * - **ServerErrorRate**: more than 5% of at least 20 requests answered 5xx, two 5-minute periods
 *   running: clients are failing (registry errors, throttles and timeouts all end as 5xx here);
 * - **BackgroundFailures**: the janitor, the verifier or the self-destruct failed: uploads stay
 *   unverified, garbage stays, or an expired registry keeps costing;
 * - **StoreBroken**: the janitor's weekly check found a tag that no longer pulls (`FsckBroken`).
 * Alarms and recoveries both notify.
 */
export class RegistryAlarms extends Construct {
  readonly topics: ITopic[] = [];
  readonly alarms: Alarm[] = [];

  constructor(scope: Construct, id: string, props: RegistryAlarmsProps) {
    super(scope, id);
    if (props.alarmEmail) {
      const topic = new Topic(this, 'Topic', { displayName: 'Berth registry alarms', enforceSSL: true });
      topic.addSubscription(new EmailSubscription(props.alarmEmail));
      this.topics.push(topic);
    }
    if (props.alarmTopicArn) this.topics.push(Topic.fromTopicArn(this, 'PagerTopic', props.alarmTopicArn));

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

    const errors: Record<string, IMetric> = {};
    props.background.forEach((fn, i) => {
      errors[`e${i}`] = fn.metricErrors({ period: PERIOD, statistic: Stats.SUM });
    });
    this.add('BackgroundFailures', {
      description:
        'The janitor, the verifier or the self-destruct failed (unhandled error): see its log group',
      metric: new MathExpression({
        expression: Object.keys(errors).join(' + '),
        usingMetrics: errors,
        period: PERIOD,
        label: 'errors',
      }),
      threshold: 0,
      evaluationPeriods: 1,
    });

    // The janitor checks once a week: a day-long period, and no data between checks keeps the
    // alarm as the last check left it (no "recovered" mail the day after a finding).
    this.add('StoreBroken', {
      treatMissingData: TreatMissingData.IGNORE,
      description:
        "The janitor's check found broken images (tags that no longer pull): run `berth fsck` (docs/fsck.md)",
      metric: new Metric({
        namespace: 'Berth',
        metricName: 'FsckBroken',
        period: Duration.days(1),
        statistic: Stats.MAXIMUM,
      }),
      threshold: 0,
      evaluationPeriods: 1,
    });
  }

  private add(
    id: string,
    props: {
      description: string;
      metric: IMetric;
      threshold: number;
      evaluationPeriods: number;
      treatMissingData?: TreatMissingData;
    },
  ): void {
    const alarm = new Alarm(this, id, {
      alarmDescription: props.description,
      metric: props.metric,
      threshold: props.threshold,
      evaluationPeriods: props.evaluationPeriods,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: props.treatMissingData ?? TreatMissingData.NOT_BREACHING,
    });
    for (const topic of this.topics) {
      alarm.addAlarmAction(new SnsAction(topic));
      alarm.addOkAction(new SnsAction(topic));
    }
    this.alarms.push(alarm);
  }
}

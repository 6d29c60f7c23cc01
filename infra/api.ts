import { CfnOutput, Stack, type RemovalPolicy } from 'aws-cdk-lib';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import {
  ApiMapping,
  CfnStage,
  DomainName,
  HttpApi,
  HttpMethod,
  HttpRoute,
  HttpRouteKey,
  HttpStage,
  LogGroupLogDestination,
} from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import { Certificate, CertificateValidation, type ICertificate } from 'aws-cdk-lib/aws-certificatemanager';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import { ARecord, HostedZone, RecordTarget } from 'aws-cdk-lib/aws-route53';
import { ApiGatewayv2DomainProperties } from 'aws-cdk-lib/aws-route53-targets';
import { Construct } from 'constructs';
import type { CustomDomain } from './props.ts';
import { WEB_ROUTES } from '../lib/web/routes.ts';

export interface Throttle {
  readonly rateLimit: number;
  readonly burstLimit: number;
}

export interface RegistryApiProps {
  readonly handler: IFunction;
  /** The web UI function: `GET /` and `GET /ui/{proxy+}` (WEB_ROUTES) go to it instead of the registry. */
  readonly web?: IFunction;
  readonly throttle: Throttle;
  readonly tokenThrottle: Throttle;
  readonly logRetention: RetentionDays;
  readonly removalPolicy: RemovalPolicy;
  readonly domain?: CustomDomain;
}

/** The token endpoint's routes: the same function, listed apart so that logins can be throttled apart. */
export const TOKEN_ROUTES = ['GET /token', 'POST /token'] as const;

/**
 * The HTTP API in front of the registry function: the `$default` stage (Docker needs `/v2/` at the
 * root, so no stage name in the path), a `$default` catch-all route, the token routes, access logs
 * and throttling. The registry does its own authentication (Docker token auth), so no API Gateway
 * authorizer sits in front of it.
 */
export class RegistryApi extends Construct {
  readonly api: HttpApi;
  readonly stage: HttpStage;
  readonly accessLogs: LogGroup;
  /** Where clients reach the registry: the custom domain, or the API's own execute-api host. */
  readonly host: string;

  constructor(scope: Construct, id: string, props: RegistryApiProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.api = new HttpApi(this, 'Api', {
      apiName: stack.stackName,
      description: 'Berth OCI registry',
      createDefaultStage: false,
    });
    const integration = new HttpLambdaIntegration('Registry', props.handler);
    new HttpRoute(this, 'DefaultRoute', { httpApi: this.api, routeKey: HttpRouteKey.DEFAULT, integration });
    for (const method of [HttpMethod.GET, HttpMethod.POST]) {
      new HttpRoute(this, `Token${method}`, {
        httpApi: this.api,
        routeKey: HttpRouteKey.with('/token', method),
        integration,
      });
    }

    if (props.web) {
      // A function of its own keeps the page's files out of the registry function's code and cold start.
      const web = new HttpLambdaIntegration('Web', props.web);
      WEB_ROUTES.forEach((key, i) => {
        const [method, path] = key.split(' ') as [HttpMethod, string];
        new HttpRoute(this, `WebRoute${i}`, {
          httpApi: this.api,
          routeKey: HttpRouteKey.with(path, method),
          integration: web,
        });
      });
    }

    this.accessLogs = new LogGroup(this, 'AccessLogs', {
      retention: props.logRetention,
      removalPolicy: props.removalPolicy,
    });
    this.stage = new HttpStage(this, 'Stage', {
      httpApi: this.api,
      stageName: '$default',
      autoDeploy: true,
      throttle: props.throttle,
      accessLogSettings: {
        destination: new LogGroupLogDestination(this.accessLogs),
        // No headers, no query strings: they can carry credentials (Basic auth, presign-like tokens).
        format: AccessLogFormat.custom(
          JSON.stringify({
            requestId: '$context.requestId',
            ip: '$context.identity.sourceIp',
            requestTime: '$context.requestTime',
            method: '$context.httpMethod',
            path: '$context.path',
            routeKey: '$context.routeKey',
            status: '$context.status',
            protocol: '$context.protocol',
            responseLength: '$context.responseLength',
            latencyMs: '$context.responseLatency',
            integrationStatus: '$context.integrationStatus',
            integrationError: '$context.integrationErrorMessage',
            userAgent: '$context.identity.userAgent',
          }),
        ),
      },
    });
    const cfnStage = this.stage.node.defaultChild as CfnStage;
    // CloudFormation's own property names: the L1 passes this object through as it is.
    cfnStage.routeSettings = Object.fromEntries(
      TOKEN_ROUTES.map((route) => [
        route,
        {
          ThrottlingRateLimit: props.tokenThrottle.rateLimit,
          ThrottlingBurstLimit: props.tokenThrottle.burstLimit,
        },
      ]),
    );

    this.host = props.domain
      ? this.customDomain(props.domain)
      : `${this.api.apiId}.execute-api.${stack.region}.${stack.urlSuffix}`;
  }

  private customDomain(domain: CustomDomain): string {
    const zone = domain.hostedZone
      ? HostedZone.fromHostedZoneAttributes(this, 'Zone', {
          hostedZoneId: domain.hostedZone.id,
          zoneName: domain.hostedZone.name,
        })
      : undefined;
    let certificate: ICertificate;
    if (domain.certificateArn) {
      certificate = Certificate.fromCertificateArn(this, 'Certificate', domain.certificateArn);
    } else if (zone) {
      certificate = new Certificate(this, 'Certificate', {
        domainName: domain.domainName,
        validation: CertificateValidation.fromDns(zone),
      });
    } else {
      throw new Error(
        `the custom domain ${domain.domainName} needs a hosted zone (to create and validate a certificate) or a certificate ARN`,
      );
    }
    const domainName = new DomainName(this, 'Domain', { domainName: domain.domainName, certificate });
    new ApiMapping(this, 'Mapping', { api: this.api, domainName, stage: this.stage });
    if (zone) {
      const target = RecordTarget.fromAlias(
        new ApiGatewayv2DomainProperties(domainName.regionalDomainName, domainName.regionalHostedZoneId),
      );
      new ARecord(this, 'Alias', { zone, recordName: domain.domainName, target });
    } else {
      new CfnOutput(this, 'DnsTarget', {
        description: `Point ${domain.domainName} (CNAME, or an alias) at this name`,
        value: domainName.regionalDomainName,
      });
    }
    return domain.domainName;
  }
}

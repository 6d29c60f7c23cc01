// Real clients against the registry a user starts with `npm start` (or, with BERTH_E2E_URL, against
// a registry already running there; with BERTH_E2E_TARGET=reference, against Debian's
// docker-registry, which is how this harness itself was validated).
import { registerClientScenarios } from './scenarios.ts';
import { targetFromEnv } from './harness/registry.ts';

const name = process.env.BERTH_E2E_URL
  ? `${process.env.BERTH_E2E_NAME ?? 'external'} (${process.env.BERTH_E2E_URL})`
  : process.env.BERTH_E2E_TARGET === 'reference'
    ? 'reference (docker-registry)'
    : 'berth (npm start)';

registerClientScenarios({ name, target: targetFromEnv, quick: process.env.BERTH_E2E_QUICK === '1' });

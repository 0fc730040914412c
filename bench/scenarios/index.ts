import type { Scenario } from '../lib/scenario.ts';
import { analysisScenario } from './analysis.ts';
import { counterScenario } from './counter.ts';
import { gatewaySecurityScenario } from './gateway-security.ts';
import { imagesScenario } from './images.ts';
import { jokesScenario } from './jokes.ts';

/** Every scenario, in the order a full run takes them. New services add theirs here. */
export const scenarios: Scenario[] = [
  counterScenario,
  jokesScenario,
  imagesScenario,
  analysisScenario,
  gatewaySecurityScenario,
];

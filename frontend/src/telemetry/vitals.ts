// Core Web Vitals to the api's `/api/vitals`, one beacon per reported metric. web-vitals itself
// decides when a value is final (LCP, CLS and INP on visibilitychange/pagehide).
import {
  onCLS,
  onFCP,
  onINP,
  onLCP,
  onTTFB,
  type MetricWithAttribution,
} from 'web-vitals/attribution';

export const VITALS_PATH = '/api/vitals';

/** Selectors can be arbitrarily long; the api keeps them as a bounded log field, never a label. */
const TARGET_MAX_CHARS = 100;

/** The body `/api/vitals` takes. */
interface Beacon {
  name: MetricWithAttribution['name'];
  value: number;
  rating: MetricWithAttribution['rating'];
  id: string;
  navigationType: MetricWithAttribution['navigationType'];
  attribution?: { target: string };
}

/** The element the metric is about: LCP's element, INP's interaction target, CLS's largest
 * shift; FCP and TTFB have none. */
function target(metric: MetricWithAttribution): string | undefined {
  switch (metric.name) {
    case 'LCP':
      return metric.attribution.target;
    case 'INP':
      return metric.attribution.interactionTarget;
    case 'CLS':
      return metric.attribution.largestShiftTarget;
    case 'FCP':
    case 'TTFB':
      return undefined;
  }
}

export function beacon(metric: MetricWithAttribution): Beacon {
  const body: Beacon = {
    name: metric.name,
    value: metric.value,
    rating: metric.rating,
    id: metric.id,
    navigationType: metric.navigationType,
  };
  const element = target(metric);
  if (element) body.attribution = { target: element.slice(0, TARGET_MAX_CHARS) };
  return body;
}

function send(metric: MetricWithAttribution): void {
  const body = JSON.stringify(beacon(metric));
  // sendBeacon survives the page closing; it refuses (returns false) when its queue is full.
  if (navigator.sendBeacon?.(VITALS_PATH, body)) return;
  void fetch(VITALS_PATH, {
    method: 'POST',
    body,
    headers: { 'Content-Type': 'application/json' },
    keepalive: true,
  }).catch(() => {
    // Nothing left to try: a lost vital is not worth an error report.
  });
}

export function startVitals(): void {
  onLCP(send);
  onFCP(send);
  onTTFB(send);
  onCLS(send);
  onINP(send);
}

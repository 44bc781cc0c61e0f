// Browser traces: document load and every fetch() to the api, exported to the api's same-origin
// OTLP relay. The fetch span's `traceparent` makes it the parent of the api's server span.
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { DocumentLoadInstrumentation } from '@opentelemetry/instrumentation-document-load';
import { FetchInstrumentation } from '@opentelemetry/instrumentation-fetch';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import type { Resource } from '@opentelemetry/resources';
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { WebTracerProvider } from '@opentelemetry/sdk-trace-web';

import { VITALS_PATH } from './vitals';
import { PrivacySpanProcessor } from './privacy';
import { onPageHide } from './session';

export const TRACES_PATH = '/otlp/v1/traces';

/** The page's own telemetry requests: tracing them would make spans about sending spans. */
const UNTRACED: RegExp[] = [/\/otlp\//, new RegExp(`${VITALS_PATH}$`)];

export function startTracing(resource: Resource): void {
  const provider = new WebTracerProvider({
    resource,
    spanProcessors: [
      // Before the exporting processor: both see the span as onEnding leaves it.
      new PrivacySpanProcessor(),
      // Short delay: a page is often closed seconds after the interaction that matters.
      new BatchSpanProcessor(new OTLPTraceExporter({ url: TRACES_PATH }), {
        scheduledDelayMillis: 500,
      }),
    ],
  });
  // The default StackContextManager and W3C propagator; fetch only sends `traceparent` to the
  // page's own origin unless told otherwise, which is what we want.
  provider.register();
  registerInstrumentations({
    tracerProvider: provider,
    instrumentations: [
      new DocumentLoadInstrumentation(),
      new FetchInstrumentation({ ignoreUrls: UNTRACED }),
    ],
  });
  onPageHide(() => void provider.forceFlush());
}

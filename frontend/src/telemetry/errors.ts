// Uncaught errors as OTel log records with the `exception.*` conventions, each inside a `ui.error`
// span so the record carries a trace id that leads to the session's trace.
import { context, trace } from '@opentelemetry/api';
import { SeverityNumber, type Logger } from '@opentelemetry/api-logs';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-http';
import type { Resource } from '@opentelemetry/resources';
import { BatchLogRecordProcessor, LoggerProvider } from '@opentelemetry/sdk-logs';
import {
  ATTR_EXCEPTION_MESSAGE,
  ATTR_EXCEPTION_STACKTRACE,
  ATTR_EXCEPTION_TYPE,
} from '@opentelemetry/semantic-conventions';

import { SERVICE_NAME, onPageHide } from './session';

export const LOGS_PATH = '/otlp/v1/logs';

/** Minified stacks are short; a runaway recursion's is not. */
const STACK_MAX_CHARS = 4096;

let logger: Logger | undefined;

/** What the conventions want from anything thrown, even a string or a plain object. */
export function describe(thrown: unknown): { type: string; message: string; stack?: string } {
  if (thrown instanceof Error) {
    return {
      type: thrown.name,
      message: thrown.message,
      stack: thrown.stack?.slice(0, STACK_MAX_CHARS),
    };
  }
  return { type: typeof thrown, message: String(thrown) };
}

/** Records `thrown` as an ERROR log record; `source` says who caught it. Returns the record's
 * trace id: a reference the page can show, to find the report again. */
export function reportError(thrown: unknown, source: 'error-boundary' | 'window.error' | 'unhandledrejection'): string {
  const { type, message, stack } = describe(thrown);
  // A child of whatever span is active (none, mostly: errors surface outside any span).
  const span = trace.getTracer(SERVICE_NAME).startSpan('ui.error', {
    attributes: { [ATTR_EXCEPTION_TYPE]: type, 'ui.error.source': source },
  });
  logger?.emit({
    severityNumber: SeverityNumber.ERROR,
    severityText: 'ERROR',
    body: message,
    attributes: {
      [ATTR_EXCEPTION_TYPE]: type,
      [ATTR_EXCEPTION_MESSAGE]: message,
      ...(stack === undefined ? {} : { [ATTR_EXCEPTION_STACKTRACE]: stack }),
      'ui.error.source': source,
    },
    context: trace.setSpan(context.active(), span),
  });
  span.end();
  return span.spanContext().traceId;
}

export function startErrorReporting(resource: Resource): void {
  const provider = new LoggerProvider({
    resource,
    processors: [
      new BatchLogRecordProcessor({
        exporter: new OTLPLogExporter({ url: LOGS_PATH }),
        scheduledDelayMillis: 500,
      }),
    ],
  });
  logger = provider.getLogger(SERVICE_NAME);
  window.addEventListener('error', (event) => reportError(event.error ?? event.message, 'window.error'));
  window.addEventListener('unhandledrejection', (event) =>
    reportError(event.reason, 'unhandledrejection'),
  );
  onPageHide(() => void provider.forceFlush());
}

// Telemetry leaves the browser with paths, not full URLs: a query string can carry anything.
import type { Span, SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ATTR_URL_FULL, ATTR_USER_AGENT_ORIGINAL } from '@opentelemetry/semantic-conventions';

/** `url` without its query string and fragment (origin and path are kept, as `url.full` must be
 * absolute); anything that is not a URL becomes `[invalid url]`. */
export function withoutQuery(url: string): string {
  try {
    const parsed = new URL(url, location.href);
    return `${parsed.origin}${parsed.pathname}`;
  } catch {
    return '[invalid url]';
  }
}

/** Rewrites what the instrumentations record before a span becomes read-only: `url.full` loses
 * its query, `user_agent.original` (document-load sets it) is dropped; the resource carries the
 * browser family instead. */
export class PrivacySpanProcessor implements SpanProcessor {
  onStart(): void {}

  onEnding(span: Span): void {
    const url = span.attributes[ATTR_URL_FULL];
    if (typeof url === 'string') span.setAttribute(ATTR_URL_FULL, withoutQuery(url));
    delete span.attributes[ATTR_USER_AGENT_ORIGINAL];
  }

  onEnd(): void {}

  forceFlush(): Promise<void> {
    return Promise.resolve();
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

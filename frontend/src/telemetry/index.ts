// Real-user monitoring, started once before React renders so the first errors and the document
// load are seen too.
import { startErrorReporting } from './errors';
import { sessionResource } from './session';
import { startTracing } from './tracing';
import { startVitals } from './vitals';

export { reportError } from './errors';

export function startTelemetry(): void {
  const resource = sessionResource();
  startTracing(resource);
  startErrorReporting(resource);
  startVitals();
}

// Who is sending: a random id per tab and the browser's family, never anything that names a person.
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import { ATTR_SESSION_ID } from '@opentelemetry/semantic-conventions/incubating';

export const SERVICE_NAME = 'ampel-web';

/** Not a semantic convention: the reduced stand-in for `user_agent.original`, which is never sent. */
export const ATTR_BROWSER_FAMILY = 'browser.family';

const SESSION_KEY = 'ampel.session.id';

export type BrowserFamily = 'Chrome' | 'Firefox' | 'Safari' | 'Edge' | 'other';

/** The tab's session id; sessionStorage keeps it across reloads of the tab and no further. */
export function sessionId(): string {
  try {
    const known = sessionStorage.getItem(SESSION_KEY);
    if (known) return known;
    const fresh = randomId();
    sessionStorage.setItem(SESSION_KEY, fresh);
    return fresh;
  } catch {
    // Storage can be disabled (privacy settings, sandboxed frames): an id per page load then.
    return randomId();
  }
}

/** A random UUID (v4). `crypto.randomUUID` exists only in secure contexts, and the page may be
 * served over plain HTTP from an address other than localhost; `getRandomValues` always exists. */
function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x40;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The family alone: the full user agent would fingerprint the user. Order matters, as Edge's
 * string also says Chrome and Safari, and Chrome's says Safari. */
export function browserFamily(userAgent: string): BrowserFamily {
  if (/Edg(e|A|iOS)?\//.test(userAgent)) return 'Edge';
  if (/(Firefox|FxiOS)\//.test(userAgent)) return 'Firefox';
  if (/(Chrome|CriOS)\//.test(userAgent)) return 'Chrome';
  if (userAgent.includes('Safari/')) return 'Safari';
  return 'other';
}

/** The resource of every browser signal, traces and logs alike. */
export function sessionResource(): Resource {
  return resourceFromAttributes({
    [ATTR_SERVICE_NAME]: SERVICE_NAME,
    [ATTR_SESSION_ID]: sessionId(),
    [ATTR_BROWSER_FAMILY]: browserFamily(navigator.userAgent),
  });
}

/** Runs `flush` on `pagehide`, the last chance to send what is queued. The SDK's batch processors
 * flush on `visibilitychange` to hidden themselves, but listen for `pagehide` on `document`, where
 * it never fires (browsers fire it at `window`). */
export function onPageHide(flush: () => void): void {
  window.addEventListener('pagehide', flush);
}

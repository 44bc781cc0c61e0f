// The api's JSON, as crates/api/src/routes/repositories.rs and the store's types serialise it.

export interface Repository {
  id: number;
  owner: string;
  name: string;
  created_at: string;
  polled_at: string | null;
}

export interface PullRequest {
  number: number;
  title: string;
  author: string;
  state: string;
  draft: boolean;
  url: string;
  created_at: string;
  updated_at: string;
}

/** `POST /api/repositories/{id}/poll`'s 202. */
export interface PollAccepted {
  job_id: string;
  trace_id: string;
}

/** Every api error body: `{"error": <status reason>, "detail": <what went wrong>}`. */
export class ApiError extends Error {
  override name = 'ApiError';

  constructor(
    readonly status: number,
    detail: string,
  ) {
    super(detail);
  }
}

async function request<T>(path: string, init?: RequestInit): Promise<T> {
  const response = await fetch(path, {
    ...init,
    headers: { Accept: 'application/json', ...(init?.body ? { 'Content-Type': 'application/json' } : {}) },
  });
  const body: unknown = await response.json().catch(() => undefined);
  if (!response.ok) {
    const detail =
      typeof body === 'object' && body !== null && 'detail' in body && typeof body.detail === 'string'
        ? body.detail
        : `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, detail);
  }
  return body as T;
}

export const listRepositories = () => request<Repository[]>('/api/repositories');

export const getRepository = (id: number) => request<Repository>(`/api/repositories/${id}`);

export const followRepository = (owner: string, name: string) =>
  request<Repository>('/api/repositories', {
    method: 'POST',
    body: JSON.stringify({ owner, name }),
  });

export const pollRepository = (id: number) =>
  request<PollAccepted>(`/api/repositories/${id}/poll`, { method: 'POST' });

export const listPullRequests = (id: number) =>
  request<PullRequest[]>(`/api/repositories/${id}/pull-requests`);

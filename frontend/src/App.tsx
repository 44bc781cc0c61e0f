// The dashboard: followed repositories, a form to follow one, "poll now", and the selected
// repository's pull requests.
import { useCallback, useEffect, useState, type FormEvent } from 'react';

import {
  followRepository,
  getRepository,
  listPullRequests,
  listRepositories,
  pollRepository,
  type PullRequest,
  type Repository,
} from './api';

/** How often, and how long, the page looks for the worker having finished a poll. */
const POLL_CHECK_EVERY_MS = 1000;
const POLL_CHECK_FOR_MS = 20_000;

const message = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** Throws while rendering, so the error boundary has something to catch (`?e2e-crash=1`). */
class E2eCrash extends Error {
  override name = 'E2eCrash';
}

function Crash(): never {
  throw new E2eCrash('crash button pressed (?e2e-crash=1)');
}

function CrashButton() {
  const [crashed, setCrashed] = useState(false);
  return (
    <>
      <button type="button" className="danger" data-testid="crash" onClick={() => setCrashed(true)}>
        Crash
      </button>
      {crashed && <Crash />}
    </>
  );
}

function FollowForm({ onFollowed }: { onFollowed: (repository: Repository) => void }) {
  const [owner, setOwner] = useState('');
  const [name, setName] = useState('');
  const [error, setError] = useState<string>();

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setError(undefined);
    try {
      onFollowed(await followRepository(owner.trim(), name.trim()));
      setOwner('');
      setName('');
    } catch (err) {
      setError(message(err));
    }
  };

  return (
    <form className="follow" onSubmit={submit}>
      <input data-testid="owner" placeholder="owner" value={owner} required onChange={(e) => setOwner(e.target.value)} />
      <span>/</span>
      <input data-testid="name" placeholder="name" value={name} required onChange={(e) => setName(e.target.value)} />
      <button type="submit" data-testid="follow">
        Follow
      </button>
      {error && <p className="error">{error}</p>}
    </form>
  );
}

function PullRequests({ repository, version }: { repository: Repository | undefined; version: number }) {
  const [pulls, setPulls] = useState<PullRequest[]>();
  const [error, setError] = useState<string>();

  useEffect(() => {
    if (!repository) return;
    let current = true;
    setPulls(undefined);
    setError(undefined);
    listPullRequests(repository.id)
      .then((found) => current && setPulls(found))
      .catch((err: unknown) => current && setError(message(err)));
    return () => {
      current = false;
    };
  }, [repository, version]);

  return (
    <section data-testid="pull-requests">
      <h2>{repository ? `Pull requests of ${repository.owner}/${repository.name}` : 'Pull requests'}</h2>
      {!repository && <p className="muted">Follow a repository to see its pull requests.</p>}
      {error && <p className="error">{error}</p>}
      {repository && pulls?.length === 0 && <p className="muted">None yet: poll the repository.</p>}
      {pulls && pulls.length > 0 && (
        <ul className="pulls">
          {pulls.map((pull) => (
            <li key={pull.number}>
              <a href={pull.url} rel="noreferrer" target="_blank">
                #{pull.number} {pull.title}
              </a>
              <span className="muted">
                {' '}
                by {pull.author} · {pull.draft ? 'draft' : pull.state}
              </span>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

export function App() {
  const [repositories, setRepositories] = useState<Repository[]>([]);
  const [selected, setSelected] = useState<number>();
  const [lastTraceId, setLastTraceId] = useState('');
  const [error, setError] = useState<string>();
  // Bumped when a poll finished, so the pull requests are fetched again.
  const [pullsVersion, setPullsVersion] = useState(0);
  const crashable = new URLSearchParams(location.search).get('e2e-crash') === '1';

  const refresh = useCallback(async () => {
    try {
      const found = await listRepositories();
      setRepositories(found);
      setSelected((current) => current ?? found[0]?.id);
      setError(undefined);
    } catch (err) {
      setError(message(err));
    }
  }, []);

  useEffect(() => {
    void refresh();
  }, [refresh]);

  const followed = (repository: Repository) => {
    setRepositories((known) => [...known, repository]);
    setSelected(repository.id);
  };

  /** The worker records `polled_at` when it is done; look until it moves or give up quietly. */
  const awaitPoll = async (repository: Repository) => {
    const deadline = Date.now() + POLL_CHECK_FOR_MS;
    while (Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, POLL_CHECK_EVERY_MS));
      const now = await getRepository(repository.id);
      if (now.polled_at !== repository.polled_at) {
        setRepositories((known) => known.map((r) => (r.id === now.id ? now : r)));
        setPullsVersion((v) => v + 1);
        return;
      }
    }
  };

  const poll = async (repository: Repository) => {
    setError(undefined);
    try {
      const accepted = await pollRepository(repository.id);
      setLastTraceId(accepted.trace_id);
      setSelected(repository.id);
      await awaitPoll(repository);
    } catch (err) {
      setError(message(err));
    }
  };

  return (
    <main>
      <header>
        <h1>Ampel</h1>
        <span className="muted">pull requests of followed repositories</span>
        {crashable && <CrashButton />}
      </header>
      <FollowForm onFollowed={followed} />
      {error && <p className="error">{error}</p>}
      <section>
        <h2>Repositories</h2>
        {repositories.length === 0 && <p className="muted">No repository followed yet.</p>}
        <ul className="repositories">
          {repositories.map((repository) => (
            <li
              key={repository.id}
              data-testid="repository"
              data-id={repository.id}
              className={repository.id === selected ? 'selected' : undefined}
            >
              <button type="button" className="link" onClick={() => setSelected(repository.id)}>
                {repository.owner}/{repository.name}
              </button>
              <span className="muted">
                {repository.polled_at ? `polled ${new Date(repository.polled_at).toLocaleString()}` : 'never polled'}
              </span>
              <button type="button" data-testid="poll" onClick={() => void poll(repository)}>
                Poll now
              </button>
            </li>
          ))}
        </ul>
        <p className="muted">
          Last poll's trace: <code data-testid="last-trace-id">{lastTraceId}</code>
        </p>
      </section>
      <PullRequests repository={repositories.find((r) => r.id === selected)} version={pullsVersion} />
    </main>
  );
}

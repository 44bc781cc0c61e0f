-- Repositories the dashboard follows, and the pull requests the worker fetched for them.
CREATE TABLE repositories (
    id          BIGSERIAL PRIMARY KEY,
    owner       TEXT NOT NULL,
    name        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    polled_at   TIMESTAMPTZ,
    UNIQUE (owner, name)
);

CREATE TABLE pull_requests (
    repository_id BIGINT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    number        INTEGER NOT NULL,
    title         TEXT NOT NULL,
    author        TEXT NOT NULL,
    state         TEXT NOT NULL,
    draft         BOOLEAN NOT NULL DEFAULT false,
    url           TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    fetched_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (repository_id, number)
);

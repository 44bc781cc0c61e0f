//! Integration tests of the api against real PostgreSQL and Redis (`DATABASE_URL`, `REDIS_URL`;
//! `bash .ci/services.sh` starts both on loopback). Each test gets its own database and queue.

mod browser;
mod helpers;
mod input;
mod metrics;
mod repositories;

//! The api and the worker together, against real PostgreSQL and Redis (`DATABASE_URL`,
//! `REDIS_URL`; `bash .ci/services.sh` starts both). The api runs in this process; the worker
//! runs as its real binary (so it can be SIGKILLed), and a local fake stands in for GitHub's API,
//! which CI cannot reach; it speaks the same response shape.

mod flow;
mod helpers;
mod resilience;

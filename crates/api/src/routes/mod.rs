//! One module per resource.

pub(crate) mod health;
pub(crate) mod repositories;
pub(crate) mod vitals;

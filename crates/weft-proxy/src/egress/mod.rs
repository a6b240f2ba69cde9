//! Egress: calls from the mesh to hosts outside it, only to hosts the config lists. Each
//! listed host is a service like any other to the rest of the proxy — balanced over the
//! addresses DNS gives it, with the same retries, timeouts and metrics (labelled with the
//! name from the list) — which [`discovery`] provides in front of the mesh's own source,
//! from names [`dns`] resolves; [`list`] is what each request is checked against.

pub(crate) mod discovery;
pub(crate) mod dns;
pub(crate) mod list;

//! flankbox-host: a local, offline server that speaks the Northflank sandbox API subset on the
//! wire (`shared/northflank-api.md`) and runs each sandbox isolated on this machine.
//!
//! - [`api`]: the axum application ([`api::app`]), REST and the exec WebSocket;
//! - [`doctor`]: what this machine needs for isolated sandboxes (`flankbox-host doctor`);
//! - [`host`]: services, volumes and the reconciler behind the API;
//! - [`lifecycle`]: the service state machine;
//! - [`runtime`]: sandboxes: the Linux isolation, the agent inside, the control channel;
//! - [`store`]: SQLite persistence.

pub mod api;
pub mod config;
pub mod doctor;
pub mod error;
pub mod host;
pub mod lifecycle;
pub mod model;
pub mod runtime;
pub mod store;

use std::sync::Arc;

pub use api::app;
pub use config::Config;
pub use error::{Error, Result};
pub use host::Host;

use runtime::linux::LinuxBackend;
use runtime::unisolated::UnisolatedBackend;
use runtime::Backend;

/// Opens the host for `config` with the backend it asks for.
///
/// Without `config.unisolated` the host isolates or does not open: when the Linux backend cannot
/// work here, this is an error, never a quiet fall back to the unisolated one.
pub async fn open_host(config: Config) -> Result<Arc<Host>> {
    let backend: Arc<dyn Backend> = if config.unisolated {
        Arc::new(UnisolatedBackend::new(&config.data_dir, &config.agent_program))
    } else {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| Error::Internal(format!("data dir {}: {e}", config.data_dir.display())))?;
        let linux = LinuxBackend::new(&config.data_dir, &config.agent_program).map_err(|e| {
            Error::Unavailable(format!(
                "cannot isolate sandboxes on this machine, so the host will not start: {e}. \
                 `flankbox-host doctor` says what is missing. (--unisolated exists only for tests \
                 without root: it runs commands directly on this machine, with no isolation.)"
            ))
        })?;
        Arc::new(linux)
    };
    Host::open(config, backend).await
}

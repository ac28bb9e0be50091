//! `exposePort`: the port merged into the service's list (replacing one with the same number or
//! name), then its DNS name polled for until it has one.

use super::SandboxRef;
use crate::error::Result;
use crate::protocol::service::{PortList, PortSpec};
use crate::retry::PollBackoff;
use crate::sandbox::{port_spec, port_url, PortOptions, PortView};
use crate::transport::Transport;

/// Exposes `asked` and resolves to the URL that reaches it, or `None` for a port that gets no
/// name (private HTTP).
pub async fn expose_port<T: Transport>(t: &T, sandbox: &SandboxRef, asked: &PortOptions) -> Result<Option<String>> {
    let wanted = port_spec(asked)?;
    let (protocol, public, port) = (wanted.protocol, wanted.public == Some(true), asked.port);
    let current: PortList<PortView> = sandbox.get(t, "/ports").await?;
    let mut ports = current
        .ports
        .iter()
        .filter(|p| p.internal_port != port && p.name != wanted.name)
        .map(PortView::keep)
        .collect::<Result<Vec<PortSpec>>>()?;
    ports.push(wanted);
    sandbox.post(t, "/ports", &PortList { ports }).await?;
    for wait in PollBackoff::default() {
        let after: PortList<PortView> = sandbox.get(t, "/ports").await?;
        let dns = after
            .ports
            .into_iter()
            .find(|p| p.internal_port == port)
            .and_then(|p| p.dns);
        match dns {
            Some(dns) => return Ok(Some(port_url(&sandbox.config.base_url, protocol, &dns))),
            None if !public => return Ok(None),
            None => t.sleep(wait).await?,
        }
    }
    unreachable!("PollBackoff never ends")
}

//! Port targets for the edge, and the TCP forwards of public TCP ports.

use super::*;

impl Host {
    /// What an exposed port's request goes to: the running sandbox and the port inside it. The
    /// refusal is the page the client sees.
    pub fn port_target(
        &self,
        project: &str,
        service: &str,
        port_name: &str,
    ) -> Result<(Arc<Sandbox>, Port), PortRefusal> {
        let scope = Scope {
            team_id: None,
            project_id: project.into(),
        };
        let refuse = |status, message: String| PortRefusal { status, message };
        let entry = self
            .find(&scope, service)
            .map_err(|_| refuse(404, format!("There is no service {service} in project {project}.")))?;
        // Runs on every proxied request: read what it needs under the locks, copy no more.
        let (port, paused, instances) = {
            let record = lock(&entry.record);
            let port = record
                .ports
                .iter()
                .find(|p| p.name == port_name && p.public && p.protocol.can_be_public())
                .cloned();
            (port, record.paused, record.instances)
        };
        let port = port.ok_or_else(|| {
            refuse(
                404,
                format!("Service {service} has no public HTTP port named {port_name}."),
            )
        })?;
        let running = lock(&entry.instance)
            .as_ref()
            .filter(|i| i.phase.can_exec())
            .map(|i| i.sandbox.clone());
        match running {
            Some(Some(sandbox)) if sandbox.is_alive() => Ok((sandbox, port)),
            Some(_) => Err(refuse(503, format!("Service {service} is not running."))),
            None if paused => Err(refuse(
                503,
                format!(
                    "Service {service} is paused; resume it to reach port {}.",
                    port.internal_port
                ),
            )),
            None => Err(refuse(
                503,
                format!("Service {service} is not running (scaled to {instances} instances, or still starting)."),
            )),
        }
    }

    /// Keeps one host loopback listener per TCP port of a service, and none for ports gone.
    pub(super) fn sync_tcp(self: &Arc<Self>, entry: &Arc<ServiceEntry>) {
        let wanted: Vec<(String, u16)> = lock(&entry.record)
            .ports
            .iter()
            .filter(|p| p.protocol == flankbox_protocol::service::PortProtocol::Tcp)
            .map(|p| (p.id.clone(), p.internal_port as u16))
            .collect();
        let mut tcp = lock(&entry.tcp);
        tcp.retain(|id, f| {
            let keep = wanted.iter().any(|(w, port)| w == id && *port == f.internal_port);
            if !keep {
                f.task.abort();
            }
            keep
        });
        for (id, internal_port) in wanted {
            if tcp.contains_key(&id) {
                continue;
            }
            let listener = match std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).and_then(|l| {
                l.set_nonblocking(true)?;
                Ok(l)
            }) {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!("cannot listen for a TCP port: {e}");
                    continue;
                }
            };
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                continue;
            };
            let host_port = listener.local_addr().map_or(0, |a| a.port());
            let weak = Arc::downgrade(entry);
            let task = tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    let Some(entry) = weak.upgrade() else { break };
                    let sandbox = lock(&entry.instance)
                        .as_ref()
                        .filter(|i| i.phase.can_exec())
                        .and_then(|i| i.sandbox.clone());
                    let Some(sandbox) = sandbox else { continue };
                    tokio::spawn(async move {
                        if let Ok(mut inside) = sandbox.dial(internal_port).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut inside).await;
                        }
                    });
                }
            });
            tcp.insert(
                id,
                TcpForward {
                    internal_port,
                    host_port,
                    task,
                },
            );
        }
    }
}

//! The log ring buffer of each service, and the task that fills it.

use super::*;

impl Host {
    /// Main-process output kept for a service.
    pub fn logs(&self, scope: &Scope, id: &str) -> Result<Vec<LogLine>> {
        Ok(lock(&self.find(scope, id)?.logs).iter().cloned().collect())
    }

    /// The kept output and a receiver of what comes next, without a line lost in between.
    pub fn tail_logs(
        &self,
        scope: &Scope,
        id: &str,
    ) -> Result<(Vec<LogLine>, tokio::sync::broadcast::Receiver<LogLine>)> {
        let entry = self.find(scope, id)?;
        let logs = lock(&entry.logs);
        let rx = entry.log_tx.subscribe();
        Ok((logs.iter().cloned().collect(), rx))
    }
}

pub(super) async fn collect_logs(entry: Arc<ServiceEntry>, instance: String, mut output: Output) {
    let mut buf = vec![0u8; 16 << 10];
    let mut pending = Vec::new();
    loop {
        let n = match output.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=pos).collect();
            entry.push_log(&instance, String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
        }
        if pending.len() > 64 << 10 {
            entry.push_log(
                &instance,
                String::from_utf8_lossy(&std::mem::take(&mut pending)).into_owned(),
            );
        }
    }
    if !pending.is_empty() {
        entry.push_log(&instance, String::from_utf8_lossy(&pending).into_owned());
    }
}

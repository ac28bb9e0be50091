//! `Sandbox` creation and connection: volume, service, capability, scale, readiness poll, and
//! clean-up when `create` fails; the handle's getters.

use std::rc::Rc;

use js_sys::Promise;
use wasm_bindgen::prelude::*;

use super::{call_cancel, promise, Inner, Northflank, Progress, Sandbox};
use crate::config::encode_component;
use crate::rest::ApiRequest;
use crate::sandbox::{self, plan_create, Created, SandboxOptions, ServiceState};
use crate::wasm::cancel::Cancel;
use crate::wasm::http::{send, send_unit};
use crate::wasm::types::{self, callback, get, signal, timeout_ms};

fn random_suffix() -> String {
    (0..12)
        .map(|_| char::from(b"0123456789abcdef"[(js_sys::Math::random() * 16.0) as usize % 16]))
        .collect()
}

#[wasm_bindgen]
impl Sandbox {
    /// Creates a sandbox and resolves once it is ready: creates the volume first when asked,
    /// creates the service, scales it to 1, and polls with backoff until it is `COMPLETED`,
    /// reporting each step through `onProgress`. Gives up after `timeoutMs` (default 120 s)
    /// and then deletes what it made.
    #[wasm_bindgen(unchecked_return_type = "Promise<Sandbox>")]
    pub fn create(
        nf: &Northflank,
        #[wasm_bindgen(unchecked_param_type = "SandboxOptions")] options: JsValue,
    ) -> Promise {
        let config = nf.config.clone();
        promise(async move {
            let opts: SandboxOptions = types::options(&options, "Sandbox.create")?;
            let timeout = timeout_ms(&options).unwrap_or(sandbox::DEFAULT_CREATE_TIMEOUT_MS);
            let cancel = Cancel::new("Sandbox.create", signal(&options), Some(timeout))?;
            let progress = Progress {
                callback: callback(&options, "onProgress"),
                started: js_sys::Date::now(),
            };
            let mut plan = plan_create(&opts, &random_suffix(), (js_sys::Date::now() / 1000.0) as u64)?;
            let mut volume_id = plan.volume_id();
            if let Some(volume) = &plan.volume {
                progress.report("creating-volume", None);
                let made: Created = send(
                    &config,
                    ApiRequest::post(config.project_path("/volumes"), volume)?,
                    &cancel,
                )
                .await?;
                if let Some(id) = made.id {
                    plan.attach_volume(&id);
                    volume_id = Some(id);
                }
            }
            let inner = Rc::new(Inner {
                config: config.clone(),
                id: plan.service_id.clone(),
                volume_id: volume_id.clone(),
            });
            progress.report("creating", None);
            let created = send::<Created>(
                &config,
                ApiRequest::post(config.project_path("/services/deployment"), &plan.service)?,
                &cancel,
            )
            .await;
            let created = match created {
                Ok(created) => created,
                Err(e) => {
                    cleanup(&inner, false).await;
                    return Err(e);
                }
            };
            // Through an edge proxy, the answer names the sandbox (the proxy chooses the name)
            // and carries the capability that stands in for a token from here on.
            let inner = match created.capability {
                Some(capability) => Rc::new(Inner {
                    config: Rc::new(config.with_capability(capability)),
                    id: created.id.unwrap_or_else(|| plan.service_id.clone()),
                    volume_id,
                }),
                None => inner,
            };
            let started = async {
                progress.report_created(&inner);
                inner.scale(1, &cancel).await?;
                inner.wait_ready(&cancel, &progress).await
            };
            if let Err(e) = started.await {
                // No handle reaches the caller, so nothing would ever delete it.
                cleanup(&inner, true).await;
                return Err(e);
            }
            progress.report("ready", None);
            Ok(Sandbox { inner }.into())
        })
    }

    /// A handle on an existing sandbox, checked to exist.
    #[wasm_bindgen(unchecked_return_type = "Promise<Sandbox>")]
    pub fn connect(
        nf: &Northflank,
        id: String,
        #[wasm_bindgen(unchecked_param_type = "ConnectOptions")] options: JsValue,
    ) -> Promise {
        let inner = Rc::new(Inner {
            config: with_capability(nf, &options),
            id,
            volume_id: None,
        });
        promise(async move {
            let cancel = call_cancel("Sandbox.connect", &options)?;
            inner.get::<ServiceState>("", &cancel).await?;
            Ok(Sandbox { inner }.into())
        })
    }

    /// A handle on a service by id, without any request (for layers built on this one, and
    /// for a page's last `destroy({ keepalive: true })`, which cannot wait for a `connect`).
    #[wasm_bindgen(js_name = forService)]
    pub fn for_service(
        nf: &Northflank,
        id: String,
        #[wasm_bindgen(unchecked_param_type = "ForServiceOptions")] options: JsValue,
    ) -> Sandbox {
        Sandbox {
            inner: Rc::new(Inner {
                config: with_capability(nf, &options),
                id,
                volume_id: None,
            }),
        }
    }

    /// The capability this sandbox is driven with, when it came from an edge proxy: hand it
    /// to `Sandbox.connect(nf, id, { capability })` elsewhere. `undefined` with a token.
    #[wasm_bindgen(getter)]
    pub fn capability(&self) -> Option<String> {
        let config = &self.inner.config;
        config.is_capability.then(|| config.token.clone())
    }

    /// The service id.
    #[wasm_bindgen(getter)]
    pub fn id(&self) -> String {
        self.inner.id.clone()
    }

    /// The volume made by `create`, if any.
    #[wasm_bindgen(getter, js_name = volumeId)]
    pub fn volume_id(&self) -> Option<String> {
        self.inner.volume_id.clone()
    }
}

/// The connection, with the edge proxy's `capability` of the options in place of the token.
fn with_capability(nf: &Northflank, options: &JsValue) -> Rc<crate::config::ClientConfig> {
    match get(options, "capability").and_then(|c| c.as_string()) {
        Some(capability) => Rc::new(nf.config.with_capability(capability)),
        None => nf.config.clone(),
    }
}

/// Best-effort deletion of a sandbox `create` could not finish.
async fn cleanup(inner: &Inner, service: bool) {
    let Ok(cancel) = Cancel::new("cleanup", None, Some(10_000)) else {
        return;
    };
    if service {
        let _ = send_unit(
            &inner.config,
            ApiRequest::delete(inner.path("?delete_child_objects=true")),
            &cancel,
        )
        .await;
    } else if let Some(volume) = &inner.volume_id {
        let _ = send_unit(
            &inner.config,
            ApiRequest::delete(
                inner
                    .config
                    .project_path(&format!("/volumes/{}", encode_component(volume))),
            ),
            &cancel,
        )
        .await;
    }
}

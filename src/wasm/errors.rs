//! The one conversion of [`Error`] into a JS `Error` with `name`, `code`, `status`, `id` and
//! `details`.

use js_sys::Reflect;
use wasm_bindgen::{JsCast, JsValue};

use crate::error::Error;

/// Builds the JS error.
pub(crate) fn to_js(e: &Error) -> JsValue {
    let err = js_sys::Error::new(&e.to_string());
    err.set_name(e.name());
    let obj: &JsValue = err.as_ref();
    let set = |k: &str, v: JsValue| {
        let _ = Reflect::set(obj, &JsValue::from_str(k), &v);
    };
    set("code", JsValue::from_str(e.code()));
    set("status", e.status().map_or(JsValue::UNDEFINED, JsValue::from));
    set("id", e.id().map_or(JsValue::UNDEFINED, JsValue::from_str));
    let details = e
        .details()
        .and_then(|d| js_sys::JSON::parse(d).ok())
        .unwrap_or(JsValue::UNDEFINED);
    set("details", details);
    err.into()
}

impl From<Error> for JsValue {
    fn from(e: Error) -> Self {
        to_js(&e)
    }
}

/// Describes a thrown JS value (fetch's TypeError, a WebSocket failure) in words.
pub(crate) fn describe(v: &JsValue) -> String {
    if let Some(e) = v.dyn_ref::<js_sys::Error>() {
        let message: String = e.message().into();
        let cause = Reflect::get(e, &"cause".into())
            .ok()
            .filter(|c| !c.is_undefined())
            .map(|c| format!(" ({})", describe(&c)))
            .unwrap_or_default();
        return format!("{message}{cause}");
    }
    v.as_string()
        .or_else(|| js_sys::JSON::stringify(v).ok().map(String::from))
        .unwrap_or_else(|| "unknown error".into())
}

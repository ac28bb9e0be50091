//! `Sandbox` files: writeFile, readFile, uploadDir and downloadDir, each a command over a
//! base64 exec session.

use js_sys::{Promise, Uint8Array};
use wasm_bindgen::prelude::*;

use super::{promise, transport, Sandbox};
use crate::error::{Error, Result};
use crate::exec;
use crate::flow;
use crate::tar;
use crate::wasm::types::{bytes, get, object};

#[wasm_bindgen]
impl Sandbox {
    /// Writes a file (its directory is made), byte for byte.
    #[wasm_bindgen(js_name = writeFile, unchecked_return_type = "Promise<void>")]
    pub fn write_file(
        &self,
        path: String,
        #[wasm_bindgen(unchecked_param_type = "string | Uint8Array")] data: JsValue,
        #[wasm_bindgen(unchecked_param_type = "CallOptions")] options: JsValue,
    ) -> Promise {
        self.file_call("writeFile", exec::files::write(&path), bytes(&data), options, |_| {
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Reads a file, byte for byte.
    #[wasm_bindgen(js_name = readFile, unchecked_return_type = "Promise<Uint8Array>")]
    pub fn read_file(
        &self,
        path: String,
        #[wasm_bindgen(unchecked_param_type = "CallOptions")] options: JsValue,
    ) -> Promise {
        self.file_call("readFile", exec::files::read(&path), Ok(Vec::new()), options, |out| {
            Ok(Uint8Array::from(&out[..]).into())
        })
    }

    /// Uploads files into `dir` as one tar stream: `{ "a.txt": "…", "sub/b.bin": Uint8Array }`
    /// or `[{ path, data }]`.
    #[wasm_bindgen(js_name = uploadDir, unchecked_return_type = "Promise<void>")]
    pub fn upload_dir(
        &self,
        dir: String,
        #[wasm_bindgen(unchecked_param_type = "Record<string, string | Uint8Array> | FileEntry[]")] files: JsValue,
        #[wasm_bindgen(unchecked_param_type = "CallOptions")] options: JsValue,
    ) -> Promise {
        let archive = file_entries(&files).and_then(|entries| tar::write(&entries));
        self.file_call("uploadDir", exec::files::untar(&dir), archive, options, |_| {
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Downloads every file under `dir`, with paths relative to it.
    #[wasm_bindgen(js_name = downloadDir, unchecked_return_type = "Promise<FileEntry[]>")]
    pub fn download_dir(
        &self,
        dir: String,
        #[wasm_bindgen(unchecked_param_type = "CallOptions")] options: JsValue,
    ) -> Promise {
        self.file_call(
            "downloadDir",
            exec::files::tar(&dir),
            Ok(Vec::new()),
            options,
            |archive| {
                let out = js_sys::Array::new();
                for e in tar::read(&archive)? {
                    if let Some(data) = e.data {
                        out.push(&object(&[
                            ("path", e.path.into()),
                            ("data", Uint8Array::from(&data[..]).into()),
                        ]));
                    }
                }
                Ok(out.into())
            },
        )
    }
}

impl Sandbox {
    /// A file operation: `argv` over a base64 session with `input` as stdin, its stdout turned
    /// into the result by `finish`.
    fn file_call(
        &self,
        what: &'static str,
        argv: Vec<String>,
        input: Result<Vec<u8>>,
        options: JsValue,
        finish: fn(Vec<u8>) -> Result<JsValue>,
    ) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            // No timeout unless asked for: a big file may take long; a signal aborts it.
            let t = transport(what, &options, None);
            finish(flow::file_op(&t, &inner, argv, &input?).await?)
        })
    }
}

fn file_entries(files: &JsValue) -> Result<Vec<tar::Entry>> {
    let mut entries = Vec::new();
    if js_sys::Array::is_array(files) {
        for item in js_sys::Array::from(files).iter() {
            let path = get(&item, "path")
                .and_then(|p| p.as_string())
                .ok_or_else(|| Error::Invalid("each file needs a path".into()))?;
            let data = bytes(&get(&item, "data").unwrap_or(JsValue::from_str("")))?;
            entries.push(tar::Entry {
                path,
                data: Some(data),
                mode: 0o644,
            });
        }
    } else {
        let obj: &js_sys::Object = files
            .dyn_ref()
            .ok_or_else(|| Error::Invalid("files must be an object or an array".into()))?;
        for pair in js_sys::Object::entries(obj).iter() {
            let pair = js_sys::Array::from(&pair);
            let path = pair.get(0).as_string().unwrap_or_default();
            entries.push(tar::Entry {
                path,
                data: Some(bytes(&pair.get(1))?),
                mode: 0o644,
            });
        }
    }
    Ok(entries)
}

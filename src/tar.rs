//! A small tar (ustar) writer and reader for directory upload and download, enough for what
//! GNU tar writes and reads: regular files, directories, long names (pax and GNU).

use crate::error::{Error, Result};

/// One file or directory in an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative path, `/`-separated, without a leading `./`.
    pub path: String,
    /// File contents; `None` for a directory.
    pub data: Option<Vec<u8>>,
    /// Permission bits.
    pub mode: u32,
}

const BLOCK: usize = 512;

fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&text.as_bytes()[text.len() - digits..]);
    field[digits] = 0;
}

fn header(name: &[u8], size: u64, mode: u32, kind: u8) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    h[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
    octal(&mut h[100..108], u64::from(mode & 0o7777));
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 0);
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    octal(&mut h[148..155], u64::from(sum));
    h[155] = b' ';
    h
}

fn pad(out: &mut Vec<u8>) {
    let rem = out.len() % BLOCK;
    if rem != 0 {
        out.resize(out.len() + BLOCK - rem, 0);
    }
}

/// Writes an archive. Paths longer than 100 bytes get a pax header.
pub fn write(entries: &[Entry]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for e in entries {
        let path = e.path.trim_start_matches("./").trim_start_matches('/');
        if path.is_empty() || path.split('/').any(|p| p == "..") {
            return Err(Error::Invalid(format!("bad path in archive: {:?}", e.path)));
        }
        let name = match &e.data {
            None => format!("{}/", path.trim_end_matches('/')),
            Some(_) => path.to_string(),
        };
        if name.len() > 100 {
            let record = pax_record("path", &name);
            out.extend_from_slice(&header(b"././@PaxHeader", record.len() as u64, 0o644, b'x'));
            out.extend_from_slice(&record);
            pad(&mut out);
        }
        match &e.data {
            None => out.extend_from_slice(&header(name.as_bytes(), 0, e.mode, b'5')),
            Some(data) => {
                out.extend_from_slice(&header(name.as_bytes(), data.len() as u64, e.mode, b'0'));
                out.extend_from_slice(data);
                pad(&mut out);
            }
        }
    }
    out.resize(out.len() + 2 * BLOCK, 0);
    Ok(out)
}

fn pax_record(key: &str, value: &str) -> Vec<u8> {
    // "<len> <key>=<value>\n", where <len> counts itself.
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while format!("{len}{body}").len() != len {
        len += 1;
    }
    format!("{len}{body}").into_bytes()
}

fn parse_octal(field: &[u8]) -> Result<u64> {
    let text: String = field.iter().take_while(|b| **b != 0).map(|b| *b as char).collect();
    let text = text.trim();
    if text.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(text, 8).map_err(|_| Error::Protocol(format!("bad number in a tar header: {text:?}")))
}

fn cstr(field: &[u8]) -> String {
    String::from_utf8_lossy(&field[..field.iter().position(|b| *b == 0).unwrap_or(field.len())]).into_owned()
}

/// Reads an archive: files and directories; links and devices are skipped.
pub fn read(bytes: &[u8]) -> Result<Vec<Entry>> {
    let mut entries = Vec::new();
    let mut pos = 0;
    let mut long_name: Option<String> = None;
    while pos + BLOCK <= bytes.len() {
        let h = &bytes[pos..pos + BLOCK];
        if h.iter().all(|b| *b == 0) {
            break;
        }
        let size =
            usize::try_from(parse_octal(&h[124..136])?).map_err(|_| Error::Protocol("tar entry too large".into()))?;
        let data_start = pos + BLOCK;
        let data_end = data_start
            .checked_add(size)
            .filter(|end| *end <= bytes.len())
            .ok_or_else(|| Error::Protocol("truncated tar archive".into()))?;
        let data = &bytes[data_start..data_end];
        pos = data_start + size.div_ceil(BLOCK) * BLOCK;
        let kind = h[156];
        match kind {
            b'L' => {
                long_name = Some(cstr(data));
                continue;
            }
            b'x' => {
                for record in String::from_utf8_lossy(data).lines() {
                    if let Some((_, kv)) = record.split_once(' ') {
                        if let Some(path) = kv.strip_prefix("path=") {
                            long_name = Some(path.to_string());
                        }
                    }
                }
                continue;
            }
            b'g' => continue,
            _ => {}
        }
        let name = long_name.take().unwrap_or_else(|| {
            let prefix = cstr(&h[345..500]);
            let name = cstr(&h[..100]);
            if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            }
        });
        let path = name.trim_start_matches("./").trim_end_matches('/').to_string();
        let mode = parse_octal(&h[100..108])? as u32;
        match kind {
            b'0' | 0 | b'7' if !path.is_empty() => entries.push(Entry {
                path,
                data: Some(data.to_vec()),
                mode,
            }),
            b'5' if !path.is_empty() && path != "." => entries.push(Entry { path, data: None, mode }),
            _ => {}
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_files_dirs_and_long_names() {
        let long = format!("deep/{}/file.bin", "d".repeat(120));
        let entries = vec![
            Entry {
                path: "deep".into(),
                data: None,
                mode: 0o755,
            },
            Entry {
                path: "hello.txt".into(),
                data: Some(b"hello\n".to_vec()),
                mode: 0o644,
            },
            Entry {
                path: long.clone(),
                data: Some((0..2000u32).map(|i| i as u8).collect()),
                mode: 0o600,
            },
            Entry {
                path: "empty".into(),
                data: Some(vec![]),
                mode: 0o644,
            },
        ];
        let bytes = write(&entries).unwrap();
        assert_eq!(bytes.len() % 512, 0);
        assert_eq!(read(&bytes).unwrap(), entries);
    }

    #[test]
    fn refuses_escaping_paths_and_truncated_archives() {
        assert!(write(&[Entry {
            path: "../x".into(),
            data: Some(vec![]),
            mode: 0o644
        }])
        .is_err());
        let bytes = write(&[Entry {
            path: "a".into(),
            data: Some(vec![1; 1000]),
            mode: 0o644,
        }])
        .unwrap();
        assert!(read(&bytes[..700]).is_err());
    }

    #[test]
    fn reads_what_gnu_tar_writes() {
        let dir = tempdir_with(&[("sub/a", b"hi")]);
        let out = std::process::Command::new("tar")
            .args(["-cf", "-", "-C"])
            .arg(&dir)
            .arg(".")
            .output()
            .unwrap();
        let entries = read(&out.stdout).unwrap();
        assert!(entries.iter().any(|e| e.path == "sub" && e.data.is_none()));
        assert!(entries
            .iter()
            .any(|e| e.path == "sub/a" && e.data.as_deref() == Some(&b"hi"[..])));
        // And GNU tar reads what we write, long names included.
        let long = format!("x/{}", "y".repeat(150));
        let ours = write(&[Entry {
            path: long.clone(),
            data: Some(b"ok".to_vec()),
            mode: 0o644,
        }])
        .unwrap();
        let target = tempdir_with(&[]);
        let mut child = std::process::Command::new("tar")
            .args(["-xf", "-", "-C"])
            .arg(&target)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), &ours).unwrap();
        child.stdin.take(); // closes stdin: end of the archive
        assert!(child.wait().unwrap().success());
        assert_eq!(std::fs::read(target.join(&long)).unwrap(), b"ok");
    }

    fn tempdir_with(files: &[(&str, &[u8])]) -> std::path::PathBuf {
        let dir = tempfile::tempdir().unwrap().keep();
        for (path, data) in files {
            let p = dir.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, data).unwrap();
        }
        dir
    }
}

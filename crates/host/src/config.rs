//! Host configuration.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// How the host runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address the API listens on.
    pub listen: SocketAddr,
    /// Where state, images and volumes live.
    pub data_dir: PathBuf,
    /// The API token every request must carry.
    pub token: String,
    /// Most processes per sandbox.
    pub pids_max: u32,
    /// Images mapped to root filesystem directories (`NAME=DIR`).
    pub images: BTreeMap<String, PathBuf>,
    /// Sandboxes kept prepared ahead of time (0 turns the pool off).
    pub warm_pool: usize,
    /// The playground's built files, served at `/`.
    pub www: Option<PathBuf>,
    /// Dev mode: the playground page may fetch the API token from `/playground/config.json`.
    /// Only loopback pages get it, and only on a loopback listener.
    pub dev: bool,
    /// The API the playground's pages use (default: this host). Pointing it at
    /// `https://api.northflank.com` runs the playground on Northflank itself.
    pub playground_api: Option<String>,
    /// The project playground sandboxes are made in.
    pub playground_project: String,
    /// The token playground pages get in dev mode (default: this host's own).
    pub playground_token: Option<String>,
    /// Run without isolation (tests without root only).
    pub unisolated: bool,
    /// The edge proxy's HMAC key (at least 32 bytes); capabilities die with it.
    pub edge_secret: Vec<u8>,
    /// The edge proxy's policy.
    pub edge_policy: flankbox_edge::Policy,
    /// The program sandboxes start as their agent: this binary.
    pub agent_program: PathBuf,
}

impl Config {
    /// A configuration for tests: loopback, a given data dir, a fixed token.
    pub fn for_tests(data_dir: PathBuf, agent_program: PathBuf, unisolated: bool) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir,
            token: "test-token".into(),
            pids_max: 512,
            images: BTreeMap::new(),
            warm_pool: 2,
            www: None,
            dev: false,
            playground_api: None,
            playground_project: "playground".into(),
            playground_token: None,
            unisolated,
            agent_program,
            edge_secret: b"flankbox-tests-edge-secret-0123456789".to_vec(),
            edge_policy: default_edge_policy(),
        }
    }
}

/// The native edge proxy's policy unless `--edge-policy` gives one: the library's locked-down
/// defaults, but more sandboxes per client, since every page on this machine is one client
/// (127.0.0.1), and public ports, which give the playground's previews (their names resolve
/// only on this machine).
pub fn default_edge_policy() -> flankbox_edge::Policy {
    flankbox_edge::Policy {
        max_sandboxes_per_client: 8,
        allow_public_ports: true,
        ..flankbox_edge::Policy::default()
    }
}

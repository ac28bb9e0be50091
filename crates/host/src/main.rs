//! The `flankbox-host` binary.
//!
//! ```text
//! flankbox-host serve [--listen ADDR] [--data-dir DIR] [--token TOKEN] [--image NAME=DIR]…
//! flankbox-host doctor [--json]
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use flankbox_host::{doctor, open_host, Config};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "flankbox-host",
    version,
    about = "A local host for Northflank-style sandboxes: the Northflank API subset on the wire, real isolated sandboxes on this machine"
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
// Parsed once at start; boxing the serve arguments would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Commands {
    /// Serve the API (and, later, the playground) until interrupted.
    Serve(ServeArgs),
    /// Check that this machine can run isolated sandboxes, and say how to fix what it lacks.
    /// Exits with 1 when a check fails.
    Doctor(DoctorArgs),
}

#[derive(clap::Args)]
struct DoctorArgs {
    /// Print the checks as a JSON array of {name, status, found, fix}.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7420")]
    listen: SocketAddr,
    /// Where state, images and volumes live [default: <user data dir>/flankbox].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// API token clients must present [default: $FLANKBOX_TOKEN, else a new random one, printed once].
    #[arg(long, env = "FLANKBOX_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Map an image name (`name` or `name:tag`) to a root filesystem directory. Repeatable.
    #[arg(long = "image", value_name = "NAME=DIR", value_parser = parse_image)]
    images: Vec<(String, PathBuf)>,
    /// Most processes (and threads) per sandbox.
    #[arg(long, default_value_t = 512)]
    pids_max: u32,
    /// Sandboxes to keep prepared ahead of time, so a create boots in milliseconds (0: none).
    #[arg(long, default_value_t = 2)]
    warm_pool: usize,
    /// Serve the playground from this directory (its build output) at `/`.
    #[arg(long, value_name = "DIR")]
    www: Option<PathBuf>,
    /// Dev mode for the playground: pages on this machine get the API token from
    /// /playground/config.json. Refused unless --listen is a loopback address.
    #[arg(long)]
    dev: bool,
    /// The API playground pages talk to [default: this host]. E.g. https://api.northflank.com to
    /// run the playground on Northflank (then also set --playground-project and a token).
    #[arg(long, value_name = "URL")]
    playground_api: Option<String>,
    /// The project playground sandboxes are made in.
    #[arg(long, default_value = "playground")]
    playground_project: String,
    /// The API token playground pages get in dev mode [default: this host's token].
    #[arg(long, env = "FLANKBOX_PLAYGROUND_TOKEN", hide_env_values = true)]
    playground_token: Option<String>,
    /// Run commands WITHOUT isolation, directly on this machine. For tests without root only.
    #[arg(long)]
    unisolated: bool,
    /// The edge proxy's key for signing capabilities, at least 32 bytes [default: a new random
    /// one each start, so capabilities do not outlive the process].
    #[arg(long, env = "FLANKBOX_EDGE_SECRET", hide_env_values = true)]
    edge_secret: Option<String>,
    /// The edge proxy's policy, a JSON file (see examples/edge-proxy/README.md) [default: the
    /// locked-down defaults, with 8 sandboxes per client].
    #[arg(long, value_name = "FILE")]
    edge_policy: Option<PathBuf>,
}

fn parse_image(s: &str) -> Result<(String, PathBuf), String> {
    let (name, dir) = s.split_once('=').ok_or("expected NAME=DIR")?;
    let dir = PathBuf::from(dir).canonicalize().map_err(|e| format!("{dir}: {e}"))?;
    Ok((name.to_string(), dir))
}

fn main() {
    // Sandboxes start this same binary as their PID 1; that must happen before anything else
    // (threads, logging) exists.
    if std::env::var_os(flankbox_host::runtime::ipc::AGENT_ENV).is_some() {
        flankbox_host::runtime::agent::main();
    }
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| "flankbox_host=info,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = match cli.command {
        Commands::Serve(args) => args,
        Commands::Doctor(args) => run_doctor(&args),
    };
    if !args.unisolated {
        preflight();
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => fail(&format!("cannot start the async runtime: {e}")),
    };
    if let Err(e) = runtime.block_on(serve(args)) {
        fail(&e);
    }
}

/// `flankbox-host doctor`: every check, the live tries included; exits 1 when one fails.
fn run_doctor(args: &DoctorArgs) -> ! {
    let checks = doctor::run(&doctor::Real { thorough: true });
    if args.json {
        match serde_json::to_string_pretty(&checks) {
            Ok(json) => println!("{json}"),
            Err(e) => fail(&e.to_string()),
        }
    } else {
        for check in &checks {
            println!("{}", check.line());
        }
    }
    let failed = checks.iter().any(|c| c.status == doctor::Status::Fail);
    std::process::exit(i32::from(failed))
}

/// Before `serve` (unless `--unisolated`): the doctor's quick checks. A failure stops the host
/// here, with the failing lines; warnings are logged. Takes about a millisecond (reading /proc
/// and one user namespace made in a child).
fn preflight() {
    let started = std::time::Instant::now();
    let checks = doctor::run(&doctor::Real { thorough: false });
    tracing::debug!(elapsed = ?started.elapsed(), "preflight checks");
    if let Some(refusal) = doctor::refusal(&checks) {
        fail(&refusal);
    }
    for check in checks.iter().filter(|c| c.status == doctor::Status::Warn) {
        tracing::warn!("doctor: {}", check.line());
    }
}

fn fail(message: &str) -> ! {
    eprintln!("flankbox-host: {message}");
    std::process::exit(1)
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let data_dir = match args.data_dir {
        Some(d) => d,
        None => dirs::data_dir()
            .ok_or("no user data directory; pass --data-dir")?
            .join("flankbox"),
    };
    std::fs::create_dir_all(&data_dir).map_err(|e| format!("data dir {}: {e}", data_dir.display()))?;
    let data_dir = data_dir.canonicalize().map_err(|e| e.to_string())?;
    let (token, generated) = match args.token.filter(|t| !t.is_empty()) {
        Some(t) => (t, false),
        None => {
            use rand::Rng;
            let t: String = (0..32)
                .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rand::rng().random_range(0..36)]))
                .collect();
            (format!("fbx_{t}"), true)
        }
    };
    if args.dev && !args.listen.ip().is_loopback() {
        return Err(format!(
            "--dev hands the API token to playground pages, so it needs a loopback --listen, not {}",
            args.listen
        ));
    }
    let www = match args.www {
        Some(dir) => Some(
            dir.canonicalize()
                .map_err(|e| format!("--www {}: {e}", dir.display()))?,
        ),
        None => None,
    };
    let edge_secret = match args.edge_secret {
        Some(secret) => secret.into_bytes(),
        None => {
            use rand::Rng;
            (0..64)
                .map(|_| b"0123456789abcdef"[rand::rng().random_range(0..16)])
                .collect()
        }
    };
    let edge_policy = match &args.edge_policy {
        Some(file) => {
            let json = std::fs::read_to_string(file).map_err(|e| format!("--edge-policy {}: {e}", file.display()))?;
            flankbox_edge::Policy::from_json(&json).map_err(|e| format!("--edge-policy {}: {e}", file.display()))?
        }
        None => flankbox_host::config::default_edge_policy(),
    };
    let agent_program = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let listen = listener.local_addr().map_err(|e| e.to_string())?;
    let config = Config {
        listen,
        data_dir,
        token: token.clone(),
        pids_max: args.pids_max,
        warm_pool: args.warm_pool,
        www,
        dev: args.dev,
        playground_api: args.playground_api,
        playground_project: args.playground_project,
        playground_token: args.playground_token,
        images: args.images.into_iter().collect::<BTreeMap<_, _>>(),
        unisolated: args.unisolated,
        agent_program,
        edge_secret,
        edge_policy,
    };
    // The proxy is built first: a bad secret or policy stops the host before it boots anything.
    let edge = flankbox_edge::Edge::new(
        &config.edge_secret,
        &config.token,
        &config.playground_project,
        None,
        config.edge_policy.clone(),
    )
    .map_err(|e| e.to_string())?;
    let host = open_host(config).await.map_err(|e| e.to_string())?;
    if args.unisolated {
        tracing::warn!(
            "--unisolated: commands run directly on this machine, with no isolation; never expose this host"
        );
    }
    tracing::info!(isolation = %host.isolation(), "sandboxes");
    println!("flankbox-host listening on http://{listen}");
    if host.config.www.is_some() {
        println!("playground: http://{listen}/");
    }
    if generated {
        println!("API token (generated; set FLANKBOX_TOKEN to choose one): {token}");
    }
    let app = flankbox_host::app(host.clone(), edge);
    // Exec frames are small and interactive: no Nagle delay.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    // The edge proxy counts sandboxes per client address.
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!("stopping sandboxes");
    host.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = ctrl_c => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

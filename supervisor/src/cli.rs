//! The command line: `serve [OPTIONS] CONFIG_URI [VAR=VALUE ...]` and `serve check`.

use clap::{Args, Parser, Subcommand};

/// Serve the web application that a PasteDeploy deployment file (deploy.ini) describes.
///
/// CONFIG_URI is a path to an INI file (`deploy.ini`), optionally with `#NAME` to pick the app
/// section (default `main`) and `?KEY=VALUE&...` options for global_conf; `config:PATH` and
/// `egg:DIST#NAME` also work. VAR=VALUE arguments enter every factory's global_conf and fill
/// `%(VAR)s` where the file's [DEFAULT] does not define VAR, exactly as with `pserve`.
#[derive(Debug, Parser)]
#[command(name = "serve", version, args_conflicts_with_subcommands = true)]
#[command(
    after_help = "Examples:\n  serve configs/tutorial.ini\n  serve --bind 127.0.0.1:8000 deploy.ini\n  serve check configs/production.ini\n  serve check --json deploy.ini#api http_port=8080\n  serve reload --pid /run/serve.pid\n\nSignals: HUP reloads (new workers start before old ones stop); TERM drains (finish in-flight requests, then exit 0); INT and QUIT stop at once; USR1 reopens log files; USR2 re-execs the binary on disk in place; TTIN and TTOU add and remove a worker."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub overrides: Overrides,
}

/// Command-line settings that override the server section.
#[derive(Debug, Args)]
pub struct Overrides {
    /// Listen on ADDR instead of what the server section says: HOST:PORT, [IPV6]:PORT,
    /// *:PORT or unix:PATH. Repeat for several addresses. Port 0 picks a free port.
    #[arg(short = 'b', long = "bind", value_name = "ADDR")]
    pub bind: Vec<String>,
    /// Threads per worker (the server section's `threads`, default 1): the tokio runtime's, or,
    /// for a Python app, the Python threads that run it (the runtime then has one).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Seconds in-flight requests get to finish on SIGTERM (`graceful_timeout`, default 30).
    #[arg(long = "graceful-timeout", value_name = "SECONDS")]
    pub graceful_timeout: Option<f64>,
    /// Worker processes (the server section's `workers`, default 1).
    #[arg(short = 'w', long, value_name = "N")]
    pub workers: Option<usize>,
    /// Seconds a worker may go without a heartbeat before it is killed and replaced
    /// (`timeout`, default 30).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<f64>,
    /// Seconds a new worker has to become ready (default 30).
    #[arg(long = "boot-timeout", value_name = "SECONDS")]
    pub boot_timeout: Option<f64>,
    /// Reload when a file the config read changes (the INI, its `config:` includes, and the
    /// `watch_files` of a `[serve]` or `[pserve]` section); also `reload = true` in the server
    /// section.
    #[arg(long)]
    pub reload: bool,
    /// Write the supervisor's PID to FILE (removed at exit).
    #[arg(long = "pid", value_name = "FILE")]
    pub pid_file: Option<std::path::PathBuf>,
    /// Run the workers as USER (after the supervisor bound the sockets).
    #[arg(short = 'u', long, value_name = "USER")]
    pub user: Option<String>,
    /// Run the workers with GROUP (default: USER's group).
    #[arg(short = 'g', long, value_name = "GROUP")]
    pub group: Option<String>,
    /// Load the config and build its pipeline, then exit: 0 if it is valid (as `serve check`).
    #[arg(long = "check-config")]
    pub check_config: bool,
    /// Replace a worker after about N requests (`max_requests`; 0, the default, never).
    #[arg(long = "max-requests", value_name = "N")]
    pub max_requests: Option<u64>,
    /// Up to N more requests, at random per worker (`max_requests_jitter`).
    #[arg(long = "max-requests-jitter", value_name = "N")]
    pub max_requests_jitter: Option<u64>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a deployment file without serving it (like `nginx -t`): print the pipeline it
    /// describes, or the error with its file and line. Exit status 0 if valid, 1 if not.
    Check(Check),
    /// Reload a running serve and wait for the outcome: exit status 0 once the new generation
    /// serves, 1 if the reload failed (the reason is printed; the old generation serves on).
    /// For systemd's ExecReload= (`serve reload $MAINPID`).
    Reload(Reload),
    /// A worker process; only the supervisor starts these.
    #[command(hide = true)]
    Worker,
}

/// `serve reload`.
#[derive(Debug, Args)]
pub struct Reload {
    /// The supervisor's PID (systemd: $MAINPID).
    #[arg(value_name = "PID", required_unless_present = "pid_file")]
    pub pid: Option<u32>,
    /// Read the PID from FILE (as written by `serve --pid FILE`).
    #[arg(long = "pid", value_name = "FILE", conflicts_with = "pid")]
    pub pid_file: Option<std::path::PathBuf>,
    /// Do not ask for a reload: wait for the one a HUP already started (with
    /// Type=notify-reload, systemd sends the HUP itself).
    #[arg(long = "no-signal")]
    pub no_signal: bool,
    /// Seconds to wait for the outcome.
    #[arg(long, value_name = "SECONDS", default_value_t = 120.0)]
    pub timeout: f64,
}

/// Which config, which app, which server, and the variables.
#[derive(Debug, Args)]
pub struct Target {
    /// The app to load (default: the CONFIG_URI's #fragment, else `main`).
    #[arg(short = 'n', long = "app-name", value_name = "NAME")]
    pub app_name: Option<String>,
    /// The [server:NAME] section to use (default `main`; none at all is fine).
    #[arg(long = "server-name", value_name = "NAME")]
    pub server_name: Option<String>,
    /// The Python environment of the file's Python eggs: a virtualenv folder or an
    /// interpreter (default: $VIRTUAL_ENV, else python3 on PATH). Needs a serve built with
    /// the `python` feature.
    #[arg(long, value_name = "PATH")]
    pub python: Option<std::path::PathBuf>,
    /// The deployment file: PATH[#APP][?KEY=VALUE...], config:PATH or egg:DIST#NAME.
    #[arg(value_name = "CONFIG_URI")]
    pub config_uri: Option<String>,
    /// Variables for global_conf and %(VAR)s interpolation.
    #[arg(value_name = "VAR=VALUE")]
    pub vars: Vec<String>,
}

/// `serve check`.
#[derive(Debug, Args)]
pub struct Check {
    /// Print the resolved plan as one JSON object: {"app": NODE, "server": NODE or null}
    /// (one object per line when several files are checked).
    #[arg(long)]
    pub json: bool,
    /// The app to load (default: the CONFIG_URI's #fragment, else `main`).
    #[arg(short = 'n', long = "app-name", value_name = "NAME")]
    pub app_name: Option<String>,
    /// The [server:NAME] section to use (default `main`; none at all is fine).
    #[arg(long = "server-name", value_name = "NAME")]
    pub server_name: Option<String>,
    /// The Python environment of the files' Python eggs: a virtualenv folder or an
    /// interpreter (default: $VIRTUAL_ENV, else python3 on PATH).
    #[arg(long, value_name = "PATH")]
    pub python: Option<std::path::PathBuf>,
    /// Deployment files to check (PATH[#APP][?KEY=VALUE...], config:PATH or egg:DIST#NAME),
    /// then VAR=VALUE variables that apply to all of them. An argument is a variable when it
    /// has `=` and no `/`, `#`, `?` or `:` before it.
    #[arg(value_name = "CONFIG_URI... [VAR=VALUE]", required = true)]
    pub args: Vec<String>,
}

impl Check {
    /// The config URIs and the variables among the arguments.
    pub fn split_args(&self) -> (Vec<String>, Vec<String>) {
        self.args
            .iter()
            .cloned()
            .partition(|arg| !is_assignment(arg))
    }
}

/// Whether a command-line argument is `VAR=VALUE` rather than a config URI.
pub fn is_assignment(arg: &str) -> bool {
    arg.split_once('=')
        .is_some_and(|(name, _)| !name.is_empty() && !name.contains(['/', '#', '?', ':']))
}

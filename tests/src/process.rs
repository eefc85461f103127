//! External servers for black-box tests (DynamoDB Local, Prism): each on a free loopback port,
//! under a shell watchdog that stops it when the test process ends, and started again on another
//! port when it exits during start-up.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How many times [`WatchedServer::start`] tries, each time on another port.
const START_ATTEMPTS: usize = 3;

/// The URL in `var`, trimmed and without a trailing slash, when it names a server already running.
pub fn url_from_env(var: &str) -> Option<String> {
    let url = std::env::var(var).ok()?;
    let url = url.trim();
    (!url.is_empty()).then(|| url.trim_end_matches('/').to_owned())
}

/// A loopback port nothing listens on right now. Another process may take it before the server
/// does, which is why [`WatchedServer::start`] retries when the server exits.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// Why a start attempt failed.
#[derive(Debug)]
pub enum Start {
    /// The server exited (it may have lost a race for the port): worth another port.
    Exited(String),
    /// It answered wrongly or not at all: another attempt would not help.
    Failed(String),
}

/// What a readiness probe found.
#[derive(Debug)]
pub enum Probe {
    /// Nothing answered yet: keep polling.
    NotUp(String),
    /// Something answered, but not as the server should: another server that took the port
    /// first (ours then exits, and the start is retried on a fresh port), or ours answering wrongly
    /// (the start fails when the wait ends).
    Wrong(String),
}

/// How to start one kind of server.
#[derive(Debug)]
pub struct WatchedServer<'a> {
    /// Names the watchdog (`chatgate-NAME-watchdog`) and the log of an attempt
    /// (`chatgate-NAME-PID-PORT.log` in the temp folder).
    pub name: &'a str,
    /// The server in messages, e.g. `DynamoDB Local`.
    pub title: &'a str,
    /// Shell lines that start the server in the background: `$1` is the test process, `$2` the
    /// port, `$3`... the arguments. They may set `cleanup` to commands the watchdog runs as it ends.
    pub launch: &'a str,
    pub cwd: &'a Path,
    pub ready_within: Duration,
    /// Heads the server's output in a failure, e.g. `java output`.
    pub output_label: &'a str,
}

// The watchdog around `launch`. Statics never drop and the workspace forbids unsafe code (so no
// prctl(PR_SET_PDEATHSIG)): this shell is what stops the server once the test process is gone.
// Its traps are set first, so that a stop during the server's own set-up still runs `cleanup`
// (`cleanup` is reset, as sh would otherwise take it from the environment).
const WATCHDOG_START: &str = r#"
cleanup=
trap 'eval "$cleanup"' EXIT
trap 'exit 143' INT TERM HUP
"#;
// The loop watches both PIDs; the trap kills the server when the loop ends or the watchdog itself
// is told to stop.
const WATCHDOG_LOOP: &str = r#"
j=$!
trap 'kill $j 2>/dev/null; eval "$cleanup"' EXIT
while kill -0 "$1" 2>/dev/null && kill -0 $j 2>/dev/null; do sleep 0.5; done
"#;

/// A server that answered its probe.
#[derive(Debug)]
pub struct Started {
    pub port: u16,
    /// From spawning the watchdog to the first right answer.
    pub startup: Duration,
}

impl WatchedServer<'_> {
    /// Starts the server, each attempt on a fresh port, until it is up or fails for a reason another
    /// port would not fix:
    /// - `args(log)`: the watchdog's arguments after the port, given the attempt's log;
    /// - `probe(port)`: whether the server is ready (see [`http_probe`]);
    /// - `exited(status, last probe)`: why the watchdog ended before the server was ready.
    ///
    /// `Err` lists the failed attempts, each with the server's output. No process is left behind.
    pub fn start(
        &self,
        args: impl Fn(&Path) -> Vec<OsString>,
        probe: impl Fn(u16) -> Result<(), Probe>,
        exited: impl Fn(ExitStatus, &str) -> Start,
    ) -> Result<Started, Vec<String>> {
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let began = Instant::now();
            let port = free_port();
            let log = std::env::temp_dir().join(format!("chatgate-{}-{}-{port}.log", self.name, std::process::id()));
            let mut watchdog = self.spawn(port, args(&log), &log);
            let (why, retry) = match wait_ready(&mut watchdog, self.ready_within, || probe(port), &exited) {
                Ok(()) => {
                    let _ = std::fs::remove_file(&log);
                    // The watchdog is never waited for: it ends with (or shortly after) this process.
                    drop(watchdog);
                    return Ok(Started { port, startup: began.elapsed() });
                }
                Err(Start::Exited(why)) => (why, true),
                Err(Start::Failed(why)) => (why, false),
            };
            // The whole process group, so that the shell and the server stop together.
            let _ = Command::new("kill").args(["-TERM", "--", &format!("-{}", watchdog.id())]).status();
            let _ = watchdog.wait();
            let output = std::fs::read_to_string(&log).unwrap_or_default();
            let _ = std::fs::remove_file(&log);
            failures.push(format!("port {port}: {why}\n--- {} ---\n{}", self.output_label, output.trim()));
            if !retry {
                break;
            }
        }
        Err(failures)
    }

    /// Runs `sh -c WATCHDOG chatgate-NAME-watchdog <test pid> <port> <args...>` in `cwd`.
    fn spawn(&self, port: u16, args: Vec<OsString>, log: &Path) -> Child {
        let script = format!("{WATCHDOG_START}{}{WATCHDOG_LOOP}", self.launch);
        let out = File::create(log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let err = out.try_clone().expect("clone log handle");
        Command::new("sh")
            .args(["-c", &script, &format!("chatgate-{}-watchdog", self.name)])
            .arg(std::process::id().to_string())
            .arg(port.to_string())
            .args(args)
            .current_dir(self.cwd)
            // Its own process group, so a failed start can stop the shell and the server together.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn sh for {}: {e}", self.title))
    }
}

/// Polls `probe` until it answers rightly, the watchdog ends, or `within` has passed.
fn wait_ready(
    watchdog: &mut Child,
    within: Duration,
    probe: impl Fn() -> Result<(), Probe>,
    exited: impl Fn(ExitStatus, &str) -> Start,
) -> Result<(), Start> {
    let deadline = Instant::now() + within;
    let mut last = String::from("no attempt");
    while Instant::now() < deadline {
        if let Ok(Some(status)) = watchdog.try_wait() {
            return Err(exited(status, &last));
        }
        match probe() {
            Ok(()) => {
                // A server that lost the port race exits within a moment; make sure the answer was ours.
                std::thread::sleep(Duration::from_millis(50));
                return match watchdog.try_wait() {
                    Ok(Some(status)) => {
                        Err(Start::Exited(format!("another server answered on the port; ours exited ({status})")))
                    }
                    _ => Ok(()),
                };
            }
            // Keep waiting: if another server holds the port, ours exits and is started again.
            Err(Probe::Wrong(why) | Probe::NotUp(why)) => last = why,
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(Start::Failed(format!("no right answer within {within:?}; last probe: {last}")))
}

/// Sends `request` (which must say `Connection: close`, as the answer is read to the end) to `port`
/// on the loopback. `Ok` when `expected(answer)`; any other HTTP answer is `Wrong("{wrong}: ...")`.
pub fn http_probe(port: u16, request: &str, expected: impl Fn(&str) -> bool, wrong: &str) -> Result<(), Probe> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let not_up = |e: std::io::Error| Probe::NotUp(e.to_string());
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).map_err(not_up)?;
    stream.set_read_timeout(Some(Duration::from_secs(3))).map_err(not_up)?;
    stream.write_all(request.as_bytes()).map_err(not_up)?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(not_up)?;
    if expected(&response) {
        Ok(())
    } else if response.starts_with("HTTP/") {
        Err(Probe::Wrong(format!("{wrong}: {}", response.replace("\r\n", " | "))))
    } else {
        Err(Probe::NotUp(format!("not HTTP: {response:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(status: ExitStatus, last: &str) -> Start {
        Start::Exited(format!("{status}; last probe: {last}"))
    }

    fn foreign_answer() -> Result<(), Probe> {
        Err(Probe::Wrong("another server's 401".into()))
    }

    #[test]
    fn a_server_that_finds_another_on_its_port_is_started_again() {
        // Ours loses the race for the port and exits while the other server answers the probe.
        let mut ours = Command::new("sh").args(["-c", "sleep 0.3; exit 1"]).spawn().expect("sh");
        let started = wait_ready(&mut ours, Duration::from_secs(10), foreign_answer, exited);
        assert!(matches!(started, Err(Start::Exited(ref why)) if why.contains("401")), "{started:?}");
    }

    #[test]
    fn a_server_that_keeps_answering_wrongly_fails_when_the_wait_ends() {
        let mut ours = Command::new("sh").args(["-c", "sleep 5"]).spawn().expect("sh");
        let started = wait_ready(&mut ours, Duration::from_millis(300), foreign_answer, exited);
        assert!(matches!(started, Err(Start::Failed(ref why)) if why.contains("401")), "{started:?}");
        let _ = ours.kill();
        let _ = ours.wait();
    }
}

//! Child processes that die with their guard, scratch directories, and
//! polling for a condition instead of sleeping.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed (SIGKILL, by its own PID) and reaped on drop.
/// Its stdout and stderr go to a log file that is printed if a test fails
/// while the guard is alive.
pub struct Child {
    pub name: String,
    inner: Option<std::process::Child>,
    pub log: PathBuf,
}

impl Child {
    pub fn spawn(name: &str, cmd: &mut Command, log_dir: &Path) -> Child {
        let log = log_dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("create log file");
        let err = file.try_clone().expect("clone log file");
        let inner = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Child { name: name.to_string(), inner: Some(inner), log }
    }

    pub fn pid(&self) -> u32 {
        self.inner.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Kills the process now (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.inner.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Panics with the log if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(c) = self.inner.as_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                panic!("{} exited with {status}; log:\n{}", self.name, self.log_text());
            }
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if std::thread::panicking() && self.inner.is_some() {
            let text = self.log_text();
            let tail: String = text.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
            eprintln!("---- last lines of {} ({}) ----\n{tail}", self.name, self.log.display());
        }
        self.kill();
    }
}

/// A scratch directory for one test, removed on drop unless the test failed.
pub struct Workdir {
    dir: Option<tempfile::TempDir>,
}

impl Workdir {
    pub fn new(test: &str) -> Workdir {
        let dir = tempfile::Builder::new().prefix(&format!("only1mcp-{test}-")).tempdir().expect("tempdir");
        Workdir { dir: Some(dir) }
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().map(|d| d.path()).expect("workdir")
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(d) = self.dir.take() {
                eprintln!("keeping {} for inspection", d.keep().display());
            }
        }
    }
}

/// Polls `f` until it returns `Some`, or panics after `timeout` with `what`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    let mut delay = Duration::from_millis(5);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(100));
    }
}

/// Reads a JSON ready file once the process has written it.
pub fn read_ready<T: serde::de::DeserializeOwned>(path: &Path, child: &mut Child) -> T {
    wait_until(&format!("{} to be ready", child.name), Duration::from_secs(30), || {
        child.assert_running();
        let text = std::fs::read_to_string(path).ok()?;
        serde_json::from_str(&text).ok()
    })
}

/// Blocking HTTP GET on loopback, for admin APIs. Returns status and body.
pub fn http_get(url: &str) -> Option<(u16, String)> {
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().ok()?;
    let resp = client.get(url).send().ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.text().ok()?))
}

pub fn http_put(url: &str, body: &str) -> Option<(u16, String)> {
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().ok()?;
    let resp = client.put(url).body(body.to_string()).send().ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.text().ok()?))
}

//! The static provider: the config file's `backends`, reloaded whenever the
//! file changes.
//!
//! The parent directory is watched (editors save by writing a new file and
//! renaming it over the old one), with a slow poll as a safety net for
//! file systems that drop inotify events (some container bind mounts).
//! Content is compared before anything is reported, so touching the file
//! or saving it unchanged does nothing. An invalid file is reported as
//! rejected, and the caller keeps serving the last good config.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::config::{Config, ConfigError};

/// Events settle for this long before the file is read: an editor's save
/// is often several writes.
const SETTLE: Duration = Duration::from_millis(15);
const POLL: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub enum FileEvent {
    Loaded(Box<Config>),
    Rejected(ConfigError),
}

/// Watches `path` and sends an event each time its content changes. The
/// first event is the current content. Runs until the receiver is dropped.
pub async fn watch(path: PathBuf, initial_content: Option<String>, tx: mpsc::Sender<FileEvent>) -> anyhow::Result<()> {
    let (raw_tx, mut raw_rx) = mpsc::channel::<std::io::Result<String>>(4);
    let p = path.clone();
    tokio::spawn(async move {
        while let Some(change) = raw_rx.recv().await {
            let event = match change {
                Ok(content) => match Config::from_yaml(&content) {
                    Ok(cfg) => FileEvent::Loaded(Box::new(cfg)),
                    Err(source) => FileEvent::Rejected(ConfigError::Decode { path: p.clone(), source }),
                },
                Err(source) => FileEvent::Rejected(ConfigError::Read { path: p.clone(), source }),
            };
            if tx.send(event).await.is_err() {
                return;
            }
        }
    });
    watch_raw(path, initial_content, raw_tx).await
}

/// Watches `path` and sends its new content (or the read error) whenever
/// it changes; the policy file uses this directly.
pub async fn watch_raw(path: PathBuf, initial_content: Option<String>, tx: mpsc::Sender<std::io::Result<String>>) -> anyhow::Result<()> {
    let (wake_tx, mut wake_rx) = mpsc::unbounded_channel::<()>();
    let file_name = path.file_name().map(|n| n.to_os_string());
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
        Ok(ev) => {
            if ev.paths.iter().any(|p| p.file_name().map(|n| n.to_os_string()) == file_name) {
                let _ = wake_tx.send(());
            }
        }
        Err(e) => warn!(error = %e, "file watcher error"),
    })?;
    let dir = parent_dir(&path);
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    debug!(dir = %dir.display(), "watching directory");

    let mut last = initial_content;
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            woke = wake_rx.recv() => {
                if woke.is_none() { return Ok(()); }
                tokio::time::sleep(SETTLE).await;
                while wake_rx.try_recv().is_ok() {}
            }
            _ = poll.tick() => {}
            _ = tx.closed() => return Ok(()),
        }
        match read_settled(&path).await {
            Ok(content) => {
                if last.as_deref() == Some(content.as_str()) {
                    continue;
                }
                last = Some(content.clone());
                if tx.send(Ok(content)).await.is_err() {
                    return Ok(());
                }
            }
            Err(e) => {
                if last.take().is_some() && tx.send(Err(e)).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
}

/// Reads the file, giving a rename-over-save a moment to finish: there
/// can be an instant with no file at all.
async fn read_settled(path: &Path) -> std::io::Result<String> {
    let mut attempt = 0;
    loop {
        match tokio::fs::read_to_string(path).await {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt < 3 => {
                attempt += 1;
                tokio::time::sleep(SETTLE).await;
            }
            other => return other,
        }
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

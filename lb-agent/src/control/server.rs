//! The unix socket server. Requests go to the core (which owns all state) over a channel;
//! the core answers through a oneshot.

use std::{
    fs,
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{bail, Context as _, Result};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader},
    net::UnixListener,
    sync::{mpsc, oneshot},
};
use tracing::{debug, warn};

use super::{Request, Response};

pub type Call = (Request, oneshot::Sender<Response>);

/// Largest request accepted (a request is one short JSON line).
const MAX_REQUEST: usize = 4096;

/// Binds the socket: its directory is created 0700, the socket is 0600, and both must be
/// owned by root (the uid we run as); a stale socket from a dead agent is replaced.
pub fn bind(path: &Path) -> Result<UnixListener> {
    let dir = path
        .parent()
        .context("control socket path has no directory")?;
    if !dir.exists() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let meta = fs::metadata(dir)?;
    if meta.uid() != me || meta.mode() & 0o022 != 0 {
        bail!(
            "{} must be owned by uid {me} and not writable by group or others",
            dir.display()
        );
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!("another agent is listening on {}", path.display());
        }
        fs::remove_file(path)?;
    }
    let l = UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    let m = fs::metadata(path)?;
    if m.mode() & 0o077 != 0 || m.uid() != me {
        bail!(
            "{} is not private (mode {:o})",
            path.display(),
            m.mode() & 0o777
        );
    }
    Ok(l)
}

/// Serves connections until the channel to the core closes.
pub fn spawn(listener: UnixListener, path: PathBuf, core: mpsc::Sender<Call>) {
    tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    warn!(error = %e, "control socket accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if core.is_closed() {
                break;
            }
            let core = core.clone();
            tokio::spawn(async move {
                if let Err(e) = serve(stream, core).await {
                    debug!(error = %format!("{e:#}"), "control connection");
                }
            });
        }
        let _ = fs::remove_file(&path);
    });
}

async fn serve(stream: tokio::net::UnixStream, core: mpsc::Sender<Call>) -> Result<()> {
    let (r, mut w) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(r).take(MAX_REQUEST as u64);
    tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut line))
        .await
        .context("request timeout")??;
    let resp = match serde_json::from_str::<Request>(line.trim()) {
        Ok(req) => {
            let (tx, rx) = oneshot::channel();
            core.send((req, tx)).await.context("agent is stopping")?;
            rx.await.context("agent dropped the request")?
        }
        Err(e) => Response::Error {
            message: format!("bad request: {e}"),
        },
    };
    let mut out = serde_json::to_vec(&resp)?;
    out.push(b'\n');
    w.write_all(&out).await?;
    Ok(())
}

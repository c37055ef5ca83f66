//! The agent's state directory: the operator's overrides, read at start and rewritten (to a
//! temporary file, then renamed) whenever they change, by one task on the IO runtime so the
//! node loop never waits on the disk.

use std::{
    fs,
    io::Write as _,
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
};

use tokio::sync::watch;
use tracing::{error, warn};

use crate::node::overrides::{File, Saved};

const FILE: &str = "overrides.json";

/// The overrides an earlier run saved in `dir` (none when there is no file; a file that
/// cannot be read is reported and ignored: the configured weights apply).
pub fn load(dir: &Path) -> Vec<Saved> {
    let path = dir.join(FILE);
    match fs::read_to_string(&path) {
        Ok(text) => match serde_json::from_str::<File>(&text) {
            Ok(f) => f.overrides,
            Err(e) => {
                warn!(file = %path.display(), error = %e, "overrides file unreadable: ignored");
                Vec::new()
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            warn!(file = %path.display(), error = %e, "overrides file unreadable: ignored");
            Vec::new()
        }
    }
}

fn save(dir: &Path, list: &[Saved]) -> std::io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let tmp = dir.join(format!("{FILE}.tmp"));
    let text = serde_json::to_string_pretty(&File {
        overrides: list.to_vec(),
    })?;
    let mut f = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, dir.join(FILE))
}

/// Starts the writer (on the current runtime); send it each new list.
pub fn writer(dir: PathBuf) -> watch::Sender<Vec<Saved>> {
    let (tx, mut rx) = watch::channel(Vec::new());
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let list = rx.borrow_and_update().clone();
            let to = dir.clone();
            let r = tokio::task::spawn_blocking(move || save(&to, &list)).await;
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    error!(dir = %dir.display(), error = %e, "cannot save the operator's overrides")
                }
                Err(e) => error!(error = %e, "saving the operator's overrides"),
            }
        }
    });
    tx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::overrides::Override;

    #[test]
    fn saved_and_loaded_back_and_garbage_is_ignored() {
        let dir = std::env::temp_dir().join(format!("lb-state-{}", std::process::id()));
        let list = vec![Saved {
            vip: "10.0.0.1".parse().expect("ip"),
            port: 80,
            protocol: "tcp".into(),
            real: "10.0.0.2:80".parse().expect("addr"),
            set: Override {
                weight: 0,
                since_unix: 5,
            },
            config: 9,
        }];
        assert!(load(&dir).is_empty(), "no file: nothing");
        save(&dir, &list).expect("save");
        assert_eq!(load(&dir), list);
        fs::write(dir.join(FILE), "{not json").expect("write");
        assert!(load(&dir).is_empty());
        let _ = fs::remove_dir_all(&dir);
    }
}

//! keepalived's `track_file`: the files the VRRP instances track, read every 200 ms (cheap: a
//! few bytes each), and reported to the node when their number changes. A missing file reads
//! as 0; `init_file` writes its value to a file that does not exist yet.

use std::{collections::HashMap, time::Duration};

use tokio::{sync::mpsc, task::JoinHandle};
use tracing::warn;

use crate::{config::TrackFileCfg, health::file::read_value, node::Event};

const POLL: Duration = Duration::from_millis(200);

/// Reads `files` until dropped (the returned task is aborted by the caller on a new plan).
pub fn spawn(files: Vec<TrackFileCfg>, events: mpsc::Sender<Event>) -> JoinHandle<()> {
    tokio::spawn(async move {
        for f in &files {
            if let Some(v) = f.init {
                if tokio::fs::metadata(&f.path).await.is_err() {
                    if let Err(e) = tokio::fs::write(&f.path, format!("{v}\n")).await {
                        warn!(track_file = %f.name, path = %f.path.display(), error = %e, "init_file failed");
                    }
                }
            }
        }
        let mut last: HashMap<String, i64> = HashMap::new();
        let mut tick = tokio::time::interval(POLL);
        loop {
            tick.tick().await;
            for f in &files {
                let text = tokio::fs::read_to_string(&f.path).await.ok();
                let value = read_value(text.as_deref());
                if last.get(&f.name) != Some(&value) {
                    last.insert(f.name.clone(), value);
                    let ev = Event::TrackFile {
                        name: f.name.clone(),
                        value,
                    };
                    if events.send(ev).await.is_err() {
                        return;
                    }
                }
            }
        }
    })
}

//! The node's outbox: effects in the order they must be carried out. Desired-state effects
//! (data path, checks, watched neighbours) are queued only when they differ from the last
//! ones queued, so the agent never redoes work that changes nothing.

use std::collections::VecDeque;

use super::{
    io::{CheckPlan, DataplaneState, Effect},
    overrides::Saved,
};

#[derive(Default)]
pub struct Effects {
    queue: VecDeque<Effect>,
    dataplane: Option<DataplaneState>,
    checks: Option<CheckPlan>,
    watch: Option<Vec<(std::net::IpAddr, String)>>,
    overrides: Option<Vec<Saved>>,
    announce: Option<Vec<std::net::IpAddr>>,
}

impl Effects {
    pub fn push(&mut self, e: Effect) {
        self.queue.push_back(e);
    }

    pub fn pop(&mut self) -> Option<Effect> {
        self.queue.pop_front()
    }

    /// The data path should hold `state` from now on.
    pub fn dataplane(&mut self, state: DataplaneState) {
        if self.dataplane.as_ref() != Some(&state) {
            self.dataplane = Some(state.clone());
            self.queue.push_back(Effect::Dataplane(state));
        }
    }

    /// The last data-path state asked for.
    pub fn last_dataplane(&self) -> Option<&DataplaneState> {
        self.dataplane.as_ref()
    }

    pub fn checks(&mut self, plan: CheckPlan) {
        if self.checks.as_ref() != Some(&plan) {
            self.checks = Some(plan.clone());
            self.queue.push_back(Effect::Checks(plan));
        }
    }

    pub fn watch(&mut self, list: Vec<(std::net::IpAddr, String)>) {
        if self.watch.as_ref() != Some(&list) {
            self.watch = Some(list.clone());
            self.queue.push_back(Effect::WatchNeighbours(list));
        }
    }

    /// The overrides to keep; the first call only records what is already saved.
    pub fn saved_overrides(&mut self, list: Vec<Saved>) {
        match &self.overrides {
            None => self.overrides = Some(list),
            Some(old) if *old == list => {}
            Some(_) => {
                self.overrides = Some(list.clone());
                self.queue.push_back(Effect::SaveOverrides(list));
            }
        }
    }

    /// Scale-out: the VIPs to announce from now on (the first call always goes out, so the
    /// routes file holds this run's truth).
    pub fn announce(&mut self, vips: Vec<std::net::IpAddr>) {
        if self.announce.as_ref() != Some(&vips) {
            self.announce = Some(vips.clone());
            self.queue.push_back(Effect::Announce(vips));
        }
    }

    pub fn hook(&mut self, what: String, argv: &[String], args: &[String]) {
        self.queue.push_back(Effect::Hook {
            what,
            argv: argv.to_vec(),
            args: args.to_vec(),
        });
    }
}

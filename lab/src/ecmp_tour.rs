//! `cargo xtask build-and-run --ecmp`: the scale-out mode (docs/bgp.md) shown on the lab of
//! `lb_tests::scale_out`: three active nodes with BIRD behind an ECMP router. Each step says
//! what should happen and checks that it did.

use std::{path::Path, time::Duration};

use anyhow::Result;
use lb_tests::{
    bird::next_hops,
    client::http_many,
    held::Held,
    scale_out::{lb_hops, wait_hops, ScaleOut, NODES},
    topology::{lb_ip, VIP},
};

use crate::lab::{pause, Screen};

pub struct EcmpTour<'a> {
    pub screen: &'a Screen,
    /// No pauses for reading.
    pub script: bool,
    step: usize,
    pub failed: usize,
}

impl<'a> EcmpTour<'a> {
    pub fn new(screen: &'a Screen, script: bool) -> Self {
        EcmpTour {
            screen,
            script,
            step: 0,
            failed: 0,
        }
    }

    fn say(&mut self, text: &str) {
        self.step += 1;
        self.screen.line(&format!("\n[step {}] {text}", self.step));
    }

    fn check(&mut self, ok: bool, detail: String) {
        let verdict = if ok { "ok" } else { "FAILED" };
        self.screen.line(&format!("  {verdict}: {detail}"));
        if !ok {
            self.failed += 1;
        }
    }

    /// Time to read what was shown (interactive only). False when interrupted.
    fn linger(&self) -> bool {
        self.script || pause(Duration::from_secs(3))
    }

    fn route(&self, lab: &ScaleOut) -> String {
        lab.router_ns()
            .ip(&["route", "show", "exact", &format!("{VIP}/32")])
            .map(|o| String::from_utf8_lossy(&o.stdout).trim_end().to_owned())
            .unwrap_or_default()
    }

    /// Checks that `held` all stayed with their real.
    fn held_ok(&mut self, held: Held, event: &str) {
        let r = held.finish();
        self.check(r.all_same(), format!("{event}: {r}"));
    }

    pub fn run(&mut self, agent: &Path) -> Result<()> {
        self.screen.line(
            "Building the scale-out lab: a router (BIRD, ECMP), lb1..lb3 (lb-agent + BIRD each), \
             r1..r3, and a client behind the router...",
        );
        let mut lab = ScaleOut::start("lbec", agent)?;

        self.say(
            "Every node announces the VIP over BGP; the router has one route with three next hops",
        );
        let route = self.route(&lab);
        self.screen.line(&format!(
            "  router$ ip route show {VIP}\n  {}",
            route.replace('\n', "\n  ")
        ));
        self.check(
            next_hops(lab.router_ns(), VIP) == lb_hops(),
            "next hops lb1, lb2, lb3".into(),
        );
        if !self.linger() {
            return Ok(());
        }

        self.say(
            "90 new connections from the client: the router spreads them, every node forwards",
        );
        let before = lab.tx();
        let answers = http_many(&lab.far.client, lab.vip80(), 90)?;
        let after = lab.tx();
        let split: Vec<u64> = after
            .iter()
            .zip(&before)
            .map(|(a, b)| a.saturating_sub(*b))
            .collect();
        let errors = answers.iter().filter(|a| a.is_err()).count();
        self.check(
            errors == 0 && split.iter().all(|n| *n > 0),
            format!("{errors} errors; frames forwarded by lb1, lb2, lb3: {split:?}"),
        );
        let text = lab.status_text(0);
        self.screen
            .line(&format!("  lb1$ lb-agent status\n{}", indent(&text)));
        if !self.linger() {
            return Ok(());
        }

        self.say("lb1's agent stops (SIGTERM): it withdraws the VIP first, keeps forwarding for its drain time, then stops; 30 held connections keep their real");
        let held = lab.hold_n(30)?;
        if let Some(a) = lab.agents[0].as_mut() {
            a.stop()?;
        }
        lab.agents[0] = None;
        let others: Vec<_> = (1..NODES).map(lb_ip).collect();
        let changed = wait_hops(lab.router_ns(), &others, Duration::from_secs(5));
        self.check(changed.is_some(), "the router now uses lb2 and lb3".into());
        self.held_ok(held, "held across the stop");
        if !self.linger() {
            return Ok(());
        }

        self.say(
            "lb1's agent starts again: once its checks pass it announces, the router adds it back",
        );
        let held = lab.hold_n(30)?;
        lab.start_agent(0, &[0, 1])?;
        let back = wait_hops(lab.router_ns(), &lb_hops(), Duration::from_secs(20));
        self.check(
            back.is_some(),
            format!("three next hops again after {:?}", back.unwrap_or_default()),
        );
        self.held_ok(held, "held while the router rehashed flows onto lb1");
        if !self.linger() {
            return Ok(());
        }

        self.say("lb3 loses its link: BFD (100 ms x 3) takes it out of the route; its flows move to lb1/lb2, whose Maglev tables send them to the same reals");
        let held = lab.hold_n(30)?;
        lab.t.lbs[2].ns.ip(&["link", "set", "eth0", "down"])?;
        let two: Vec<_> = (0..2).map(lb_ip).collect();
        let out = wait_hops(lab.router_ns(), &two, Duration::from_secs(5));
        self.check(
            out.is_some(),
            format!("lb3 out of the route after {:?}", out.unwrap_or_default()),
        );
        pause(Duration::from_secs(1));
        self.held_ok(held, "held across the link loss");
        lab.t.lbs[2].ns.ip(&["link", "set", "eth0", "up"])?;
        let back = wait_hops(lab.router_ns(), &lb_hops(), Duration::from_secs(30));
        self.check(back.is_some(), "lb3 back in the route with its link".into());
        Ok(())
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

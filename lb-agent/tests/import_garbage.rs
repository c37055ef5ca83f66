//! No panic on garbage: random bytes and random mutations of the golden inputs must give
//! `Ok` or `Err`, and `to_yaml` of every `Ok` must parse back. Deterministic (xorshift).

use std::fs;

use lb_agent::config::{
    import::{import_str, to_yaml},
    schema,
};

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Bytes that matter to the parser, to make mutations hit interesting paths.
const SPICE: &[&[u8]] = &[
    b"{",
    b"}",
    b"\"",
    b"'",
    b"#",
    b"!",
    b"\\",
    b"\n",
    b" ",
    b"include x\n",
    b"@h ",
    b"$A=1\n",
    b"real_server ",
    b"virtual_server 10.0.0.1 80 {",
    b"weight -7",
    b"99999999999999999999",
    b"0.000000001",
    b"fd00::1",
    b"\xff\xfe",
    b"\t",
    b"/",
    b"-",
    b"HTTP_GET {",
    b"url {",
    b"lb_kind DR\n",
    b"version 3\n",
    b"advert_int 0.001\n",
    b"status_code 600-100\n",
];

fn mutate(rng: &mut XorShift, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..=rng.below(8) {
        let at = rng.below(v.len() + 1);
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            1 => {
                let s = SPICE[rng.below(SPICE.len())];
                v.splice(at..at, s.iter().copied());
            }
            2 if !v.is_empty() => {
                let end = (at + rng.below(64)).min(v.len());
                v.drain(at.min(end)..end);
            }
            3 if !v.is_empty() => {
                let from = rng.below(v.len());
                let end = (from + rng.below(200)).min(v.len());
                let chunk = v[from..end].to_vec();
                v.splice(at..at, chunk);
            }
            4 => {
                let junk: Vec<u8> = (0..rng.below(16)).map(|_| rng.next() as u8).collect();
                v.splice(at..at, junk);
            }
            _ => {}
        }
    }
    v
}

fn check(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    if let Ok(report) = import_str(&text, "fuzz.conf") {
        let yaml = to_yaml(&report);
        let back: Result<schema::File, _> = serde_yaml::from_str(&yaml);
        if let Err(e) = back {
            panic!("to_yaml output does not parse back: {e}\n{yaml}");
        }
    }
}

#[test]
fn mutated_golden_inputs_never_panic() {
    let mut inputs: Vec<Vec<u8>> = fs::read_dir("tests/import/golden")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "conf"))
                .filter_map(|p| fs::read(p).ok())
                .collect()
        })
        .unwrap_or_default();
    inputs.sort();
    assert!(!inputs.is_empty());
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let rounds = std::env::var("FUZZ_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(4000usize);
    for _ in 0..rounds {
        let base = &inputs[rng.below(inputs.len())];
        let m = mutate(&mut rng, base);
        check(&m);
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    for _ in 0..2000 {
        let len = rng.below(512);
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                // Mostly printable, with the parser's special characters over-represented.
                match rng.below(10) {
                    0 => b"{}\"'#!\\\n"[rng.below(8)],
                    1 => rng.next() as u8,
                    _ => b" abcdefghijklmnopqrstuvwxyz_0123456789./:-\n"[rng.below(43)],
                }
            })
            .collect();
        check(&bytes);
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let text = "a {\n".repeat(100_000);
    assert!(import_str(&text, "deep").is_err());
    let text = "}".repeat(10) + &"{".repeat(100_000);
    assert!(import_str(&text, "deep").is_err());
}

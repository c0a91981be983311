//! The fuzzing properties (`fuzz/checks.rs`) on every `cargo test`: the
//! hand-written seeds (`fuzz/seeds/`) and the corpus libFuzzer found
//! (`fuzz/corpus/`, minimised), then a
//! bounded number of random and mutated inputs from a fixed seed, so a
//! failure here is reproducible.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::PathBuf;

/// Random inputs per parser; a few seconds in all.
const RANDOM_INPUTS: usize = 100_000;

fn corpus(name: &str) -> Vec<Vec<u8>> {
    let mut files = Vec::new();
    for kind in ["seeds", "corpus"] {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz")
            .join(kind)
            .join(name);
        let found: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        assert!(found.len() >= 10, "{} is nearly empty", dir.display());
        files.extend(found);
    }
    files.sort();
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

/// xorshift64*: small, seeded, good enough to pick bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that matter to JSON and TOML, so mutations reach deep paths.
const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"=",
    b"\n",
    b"\\u0000",
    b"true",
    b"null",
    b"1e999",
    b"-0",
    b"nan",
    b"inf",
    b"\"type\"",
    b"\"status\"",
    b"[source]",
    b"uri",
    b"[detector]",
    b"thresholds",
    b"'''",
    b"#",
    b"\xff",
    b"\xe9\xa1\x94",
];

/// A random input: a corpus entry bent by a few mutations, or noise.
fn input(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut data = if rng.below(8) == 0 {
        (0..rng.below(200)).map(|_| rng.next() as u8).collect()
    } else {
        corpus[rng.below(corpus.len())].clone()
    };
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(5) {
            0 if !data.is_empty() => {
                let i = at.min(data.len() - 1);
                data[i] ^= 1 << rng.below(8);
            }
            1 => data.truncate(at),
            2 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                data.splice(at..at, t.iter().copied());
            }
            3 => {
                let other = &corpus[rng.below(corpus.len())];
                let from = rng.below(other.len() + 1);
                data.splice(at..at, other[from..].iter().copied());
            }
            _ => {
                let end = (at + rng.below(16)).min(data.len());
                data.drain(at..end);
            }
        }
    }
    data
}

fn run(name: &str, check: fn(&[u8])) {
    let corpus = corpus(name);
    for entry in &corpus {
        check(entry);
    }
    let mut rng = Rng(0x6b61_6f5f_6675_7a7a);
    for _ in 0..RANDOM_INPUTS {
        let data = input(&mut rng, &corpus);
        let result = std::panic::catch_unwind(|| check(&data));
        assert!(
            result.is_ok(),
            "{name} check failed on {:?}",
            String::from_utf8_lossy(&data)
        );
    }
}

#[test]
fn protocol_parser_survives_corpus_and_random_lines() {
    run("protocol", checks::protocol);
}

#[test]
fn config_parser_survives_corpus_and_random_files() {
    run("config", checks::config);
}

//! Mints the same Twilio access token N times and prints the rate as one machine-readable line,
//! for `bench/token-throughput` to set beside twilio-node and twilio-python.
//!
//! `cargo run --release -p chatgate --example mint_throughput -- [N] [--token]`
//! prints `impl=chatgate n=N seconds=S tokens_per_s=R`; `--token` prints one token instead.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use chatgate::clock::{Clock, SystemClock};
use chatgate::domain::{AccountSid, ApiKeySid, Identity, ServiceSid, TtlPolicy};
use chatgate::twilio::{AccessTokenMinter, TokenSigningKey};
use secrecy::SecretString;

// The same inputs as bench/mint_node.js and bench/mint_python.py; bench/token-throughput checks
// that the three mint equivalent tokens.
const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const API_KEY_SID: &str = "SK0123456789abcdef0123456789abcdef";
const API_KEY_SECRET: &str = "bench-api-key-secret-0123456789abcdef";
const SERVICE_SID: &str = "IS0123456789abcdef0123456789abcdef";
const IDENTITY: &str = "alice@example.com";
const TTL_SECONDS: u32 = 3600;

const DEFAULT_N: u64 = 200_000;

fn main() -> ExitCode {
    let mut n = DEFAULT_N;
    let mut print_token = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--token" => print_token = true,
            other => match other.parse() {
                Ok(value) if value > 0 => n = value,
                _ => {
                    eprintln!("usage: mint_throughput [N > 0] [--token]");
                    return ExitCode::from(2);
                }
            },
        }
    }

    // Built once, as the token Lambda builds it at cold start.
    let minter = AccessTokenMinter::new(
        AccountSid::try_from(ACCOUNT_SID).expect("account SID"),
        ApiKeySid::try_from(API_KEY_SID).expect("API key SID"),
        TokenSigningKey::new(&SecretString::from(API_KEY_SECRET)),
        &ServiceSid::try_from(SERVICE_SID).expect("service SID"),
        None,
    );
    let identity = Identity::try_from(IDENTITY).expect("identity");
    let ttl = TtlPolicy::new(TTL_SECONDS, 86_400).expect("ttl policy").default_ttl();
    let clock = SystemClock;

    if print_token {
        println!("{}", minter.mint(&identity, ttl, clock.now()).jwt);
        return ExitCode::SUCCESS;
    }

    // Warm up caches and the CPU's clock before timing, as the Node and Python runs do.
    for _ in 0..n.min(10_000) {
        black_box(minter.mint(black_box(&identity), ttl, clock.now()));
    }
    // Per token, what the handler does per request: read the clock, mint, own the string.
    let started = Instant::now();
    let mut bytes = 0usize;
    for _ in 0..n {
        bytes += black_box(minter.mint(black_box(&identity), ttl, clock.now())).jwt.len();
    }
    let seconds = started.elapsed().as_secs_f64();
    black_box(bytes);
    println!("impl=chatgate n={n} seconds={seconds:.6} tokens_per_s={:.0}", n as f64 / seconds);
    ExitCode::SUCCESS
}

//! What signing one access token costs, per algorithm, on one thread: the
//! issuer's signer (`KeyManager::sign`, the key pair parsed once) and, for
//! comparison, `jsonwebtoken::encode` (which parses the private key again
//! for every token). The token endpoint cannot issue tokens faster per core
//! than its signer signs them, so this is the ceiling the issuer benchmark
//! (benches/scale.py) sets its per-core figures against. Prints JSON.
//! `cargo run --release --example sign_speed -- [N]`.

use mcpgate::domain::claims::{AccessClaims, Audience, AT_JWT_TYP};
use mcpgate::infra::memory_store::MemoryStore;
use mcpgate::issue::keys::{generate_pem, KeyManager, PemKeys, SigningAlg};
use std::sync::Arc;
use std::time::Instant;

fn claims(i: usize) -> AccessClaims {
    AccessClaims {
        iss: "https://as.bench.example".into(),
        sub: "local:bench".into(),
        aud: Audience::One("https://mcp.bench.example/mcp".into()),
        exp: 2_000_000_000,
        iat: 1_900_000_000,
        nbf: None,
        jti: format!("{i:022}"),
        client_id: Some("bench-client".into()),
        scope: Some("mcp:tools".into()),
        username: Some("bench".into()),
        email: None,
        name: None,
    }
}

/// Tokens per second signing `n` tokens with `f`.
fn rate(n: usize, mut f: impl FnMut(usize)) -> f64 {
    for i in 0..n / 10 {
        f(i);
    }
    let t = Instant::now();
    for i in 0..n {
        f(i);
    }
    n as f64 / t.elapsed().as_secs_f64()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(3_000);
    let mut out = serde_json::Map::new();
    for alg in [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA] {
        let pem = generate_pem(alg)?;
        let keys = PemKeys {
            current: pem.clone(),
            ..Default::default()
        };
        let km = KeyManager::from_pem(alg, &keys, Arc::new(MemoryStore::new()))?;
        let ours = rate(n, |i| {
            std::hint::black_box(km.sign(&claims(i)).ok());
        });
        let enc = match alg {
            SigningAlg::RS256 => jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()),
            SigningAlg::ES256 => jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()),
            SigningAlg::EdDSA => jsonwebtoken::EncodingKey::from_ed_pem(pem.as_bytes()),
        }?;
        let mut header = jsonwebtoken::Header::new(alg.jwt());
        header.typ = Some(AT_JWT_TYP.to_owned());
        header.kid = km.current_kid();
        let theirs = rate(n, |i| {
            std::hint::black_box(jsonwebtoken::encode(&header, &claims(i), &enc).ok());
        });
        out.insert(
            alg.name().to_owned(),
            serde_json::json!({"signer_per_s": ours, "jsonwebtoken_encode_per_s": theirs}),
        );
    }
    println!("{}", serde_json::Value::Object(out));
    Ok(())
}

//! The raw limit for the benchmark: signature verifications per second on
//! one thread, with the same aws-lc-rs call the verifier makes per uncached
//! token (`ParsedPublicKey::verify_sig` on a key parsed once, see
//! `verify::jwt::VerifyKey`). Prints one JSON object. Run by benches/run:
//! `cargo run --release --example verify_speed -- [seconds]`.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, ParsedPublicKey, RsaKeyPair, VerificationAlgorithm,
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, RSA_PKCS1_2048_8192_SHA256,
    RSA_PKCS1_SHA256,
};
use std::time::{Duration, Instant};

/// A JWT signing input of a typical access token's size.
const MESSAGE: &[u8] = &[b'x'; 620];

fn rate(
    alg: &'static dyn VerificationAlgorithm,
    public: &[u8],
    sig: &[u8],
    secs: f64,
) -> Result<f64, String> {
    let key = ParsedPublicKey::new(alg, public).map_err(|e| e.to_string())?;
    key.verify_sig(MESSAGE, sig).map_err(|e| e.to_string())?;
    let (start, limit) = (Instant::now(), Duration::from_secs_f64(secs));
    let mut n = 0u64;
    while start.elapsed() < limit {
        for _ in 0..64 {
            if key.verify_sig(MESSAGE, sig).is_err() {
                return Err("verification failed".into());
            }
        }
        n += 64;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

fn main() -> Result<(), String> {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let rng = SystemRandom::new();
    let e = |e: aws_lc_rs::error::Unspecified| e.to_string();

    let rsa = RsaKeyPair::generate(KeySize::Rsa2048).map_err(e)?;
    let mut rsa_sig = vec![0u8; rsa.public_modulus_len()];
    rsa.sign(&RSA_PKCS1_SHA256, &rng, MESSAGE, &mut rsa_sig)
        .map_err(e)?;
    let rs256 = rate(
        &RSA_PKCS1_2048_8192_SHA256,
        rsa.public_key().as_ref(),
        &rsa_sig,
        secs,
    )?;

    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).map_err(e)?;
    let ec = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
        .map_err(|e| e.to_string())?;
    let ec_sig = ec.sign(&rng, MESSAGE).map_err(e)?;
    let es256 = rate(
        &ECDSA_P256_SHA256_FIXED,
        ec.public_key().as_ref(),
        ec_sig.as_ref(),
        secs,
    )?;

    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(e)?;
    let ed = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| e.to_string())?;
    let ed_sig = ed.sign(MESSAGE);
    let eddsa = rate(&ED25519, ed.public_key().as_ref(), ed_sig.as_ref(), secs)?;

    println!(r#"{{"RS256": {rs256:.0}, "ES256": {es256:.0}, "EdDSA": {eddsa:.0}}}"#);
    Ok(())
}

//! Unit tests of the signing keys.

use super::*;
use crate::domain::claims::Audience;
use crate::infra::memory_store::MemoryStore;

fn claims() -> AccessClaims {
    AccessClaims {
        iss: "https://as.example".into(),
        sub: "u".into(),
        aud: Audience::One("https://rs.example/mcp".into()),
        exp: 2_000_000_000,
        iat: 1_000,
        nbf: None,
        jti: "j".into(),
        client_id: Some("c".into()),
        scope: Some("a".into()),
        username: None,
        email: None,
        name: None,
    }
}

#[tokio::test]
async fn generate_sign_verify_all_algs() {
    for alg in [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA] {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let km = KeyManager::from_store(alg, store.clone(), Duration::from_secs(60), 100)
            .await
            .unwrap();
        let t = km.sign(&claims()).unwrap();
        assert_eq!(km.decode(&t, "https://as.example"), Some(claims()));
        assert!(km.decode(&t, "https://other.example").is_none());
        assert_eq!(km.jwks().keys.len(), 2, "current + next");
        // A restart loads the same keys.
        let again = KeyManager::from_store(alg, store, Duration::from_secs(60), 100)
            .await
            .unwrap();
        assert_eq!(again.current_kid(), km.current_kid());
    }
}

#[tokio::test]
async fn rotation_prepublishes_and_retires() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let km = KeyManager::from_store(SigningAlg::ES256, store, Duration::from_secs(60), 100)
        .await
        .unwrap();
    let old = km.sign(&claims()).unwrap();
    let first = km.current_kid().unwrap();
    let next_kid = km
        .jwks()
        .keys
        .iter()
        .filter_map(|k| k.common.key_id.clone())
        .find(|k| *k != first)
        .unwrap();
    let new_kid = km.rotate(200).await.unwrap();
    assert_eq!(new_kid, next_kid, "the pre-published key signs next");
    assert!(km.decode(&old, "https://as.example").is_some());
    assert_eq!(km.jwks().keys.len(), 3);
    km.rotate(300).await.unwrap();
    // The first key retired at 200 + 60 < 300: dropped.
    let kids: Vec<_> = km
        .jwks()
        .keys
        .iter()
        .filter_map(|k| k.common.key_id.clone())
        .collect();
    assert!(!kids.contains(&first));
    assert!(km.decode(&old, "https://as.example").is_none());
}

#[test]
fn pem_keys_use_thumbprint_kids() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let pem = PemKeys {
        current: generate_pem(SigningAlg::RS256).unwrap(),
        next: Some(generate_pem(SigningAlg::RS256).unwrap()),
        retired: vec![],
    };
    let km = KeyManager::from_pem(SigningAlg::RS256, &pem, store).unwrap();
    assert_eq!(km.jwks().keys.len(), 2);
    assert!(km.is_file_managed());
    let t = km.sign(&claims()).unwrap();
    assert!(km.decode(&t, "https://as.example").is_some());
    assert!(KeyManager::from_pem(
        SigningAlg::ES256,
        &PemKeys {
            current: "garbage".into(),
            ..Default::default()
        },
        Arc::new(MemoryStore::new())
    )
    .is_err());
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_starting_together_agree_and_follow_a_rotation() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let mut starts = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        starts.push(tokio::spawn(async move {
            KeyManager::from_store(SigningAlg::ES256, store, Duration::from_secs(60), 100)
                .await
                .unwrap()
        }));
    }
    let mut replicas = Vec::new();
    for s in starts {
        replicas.push(s.await.unwrap());
    }
    let jwks = |k: &KeyManager| {
        let mut kids: Vec<_> = k
            .jwks()
            .keys
            .iter()
            .map(|j| j.common.key_id.clone())
            .collect();
        kids.sort();
        kids
    };
    for r in &replicas[1..] {
        assert_eq!(r.current_kid(), replicas[0].current_kid());
        assert_eq!(jwks(r), jwks(&replicas[0]));
    }
    assert_eq!(jwks(&replicas[0]).len(), 2, "one current and one next");
    let new = replicas[0].rotate(200).await.unwrap();
    for r in &replicas[1..] {
        assert!(r.reload_if_rotated().await.unwrap());
        assert_eq!(r.current_kid().as_deref(), Some(new.as_str()));
        assert!(!r.reload_if_rotated().await.unwrap());
    }
}

#[tokio::test]
async fn a_replica_adopts_the_pair_another_one_proposed_first() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    // Another replica won the compare-and-set but has not stored its keys.
    let theirs = vec![
        new_record(SigningAlg::ES256, KeyState::Current, 50).unwrap(),
        new_record(SigningAlg::ES256, KeyState::Next, 50).unwrap(),
    ];
    let bytes = serde_json::to_vec(&theirs).unwrap();
    assert!(store
        .put_if_absent(Namespace::Keys, GENESIS, &bytes, None)
        .await
        .unwrap());
    let km = KeyManager::from_store(SigningAlg::ES256, store, Duration::from_secs(60), 100)
        .await
        .unwrap();
    assert_eq!(km.current_kid().as_deref(), Some(theirs[0].kid.as_str()));
    let mut kids: Vec<_> = km
        .jwks()
        .keys
        .iter()
        .filter_map(|j| j.common.key_id.clone())
        .collect();
    kids.sort();
    let mut want = vec![theirs[0].kid.clone(), theirs[1].kid.clone()];
    want.sort();
    assert_eq!(kids, want);
}

/// The signer keeps the parsed key pair instead of calling
/// `jsonwebtoken::encode`: its tokens are byte for byte what that function
/// writes (RS256 and EdDSA signatures are deterministic; ES256's header and
/// claims are compared) and verify with jsonwebtoken.
#[test]
fn tokens_are_what_jsonwebtoken_would_write() {
    for alg in [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA] {
        let k = load(new_record(alg, KeyState::Current, 0).unwrap()).unwrap();
        let km = KeyManager {
            alg,
            store: Arc::new(MemoryStore::new()),
            retire_after: Duration::from_secs(60),
            file_managed: true,
            keys: RwLock::new(vec![k]),
        };
        let ours = km.sign(&claims()).unwrap();
        let keys = km.keys.read().unwrap();
        let k = &keys[0];
        let pem = k.rec.pem.as_bytes();
        let enc = match alg {
            SigningAlg::RS256 => EncodingKey::from_rsa_pem(pem),
            SigningAlg::ES256 => EncodingKey::from_ec_pem(pem),
            SigningAlg::EdDSA => EncodingKey::from_ed_pem(pem),
        }
        .unwrap();
        let mut header = Header::new(alg.jwt());
        header.typ = Some(AT_JWT_TYP.to_owned());
        header.kid = Some(k.rec.kid.clone());
        let theirs = jsonwebtoken::encode(&header, &claims(), &enc).unwrap();
        if alg == SigningAlg::ES256 {
            let cut = |t: &str| t.rsplit_once('.').unwrap().0.to_owned();
            assert_eq!(cut(&ours), cut(&theirs));
        } else {
            assert_eq!(ours, theirs, "{alg:?}");
        }
        let mut v = Validation::new(alg.jwt());
        v.set_audience(&["https://rs.example/mcp"]);
        let got = jsonwebtoken::decode::<AccessClaims>(&ours, &k.dec, &v).unwrap();
        assert_eq!(got.claims, claims());
        assert_eq!(got.header.typ.as_deref(), Some(AT_JWT_TYP));
    }
}

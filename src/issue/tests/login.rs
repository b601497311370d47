//! Password login and its throttling: failures back off per (username,
//! client IP) after 5 and per client IP after 30, doubling from 1 s up to
//! 15 minutes, counted over an hour; the back-off ends as the clock moves.

use super::*;

/// What one password attempt came to.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    Ok,
    Retry,
    Limited(u64),
}

async fn attempt(f: &Fixture, id: &str, user: &str, pw: &str, ip: &str) -> Attempt {
    match f.iss.login_static(id, CSRF, user, pw, ip).await {
        Ok(LoginOutcome::Ok { .. }) => Attempt::Ok,
        Ok(LoginOutcome::Retry(v)) => {
            assert_eq!(v.error.as_deref(), Some("Invalid username or password."));
            Attempt::Retry
        }
        Ok(LoginOutcome::Limited { view, retry_after }) => {
            let e = view.error.unwrap_or_default();
            assert!(e.contains(&format!("{retry_after} seconds")), "{e}");
            Attempt::Limited(retry_after)
        }
        Err(_) => panic!("the pending request failed"),
    }
}

async fn pending(f: &Fixture) -> String {
    let c = f.confidential().await;
    f.start(f.params(&c)).await
}

#[tokio::test]
async fn the_right_password_logs_in_and_a_wrong_one_retries() {
    let f = Fixture::new().await;
    let id = pending(&f).await;
    assert_eq!(attempt(&f, &id, USER, "wrong", IP).await, Attempt::Retry);
    // An unknown user looks the same as a wrong password.
    assert_eq!(
        attempt(&f, &id, "mallory", PASSWORD, IP).await,
        Attempt::Retry
    );
    assert_eq!(
        attempt(&f, &id, "ALICE", PASSWORD, IP).await,
        Attempt::Retry
    );
    assert_eq!(attempt(&f, &id, USER, PASSWORD, IP).await, Attempt::Ok);
}

#[tokio::test]
async fn failures_per_user_and_ip_back_off_doubling_as_the_clock_moves() {
    let f = Fixture::new().await;
    let id = pending(&f).await;
    for _ in 0..6 {
        assert_eq!(attempt(&f, &id, USER, "wrong", IP).await, Attempt::Retry);
    }
    // The 6th failure started a 1 s back-off: even the right password waits.
    assert_eq!(
        attempt(&f, &id, USER, PASSWORD, IP).await,
        Attempt::Limited(1)
    );
    // Another IP, or another user from this IP, is not held back.
    assert_eq!(
        attempt(&f, &id, USER, "wrong", "198.51.100.7").await,
        Attempt::Retry
    );
    assert_eq!(attempt(&f, &id, "bob", "wrong", IP).await, Attempt::Retry);
    f.advance(1);
    assert_eq!(attempt(&f, &id, USER, "wrong", IP).await, Attempt::Retry);
    assert_eq!(
        attempt(&f, &id, USER, "wrong", IP).await,
        Attempt::Limited(2)
    );
    f.advance(1);
    assert_eq!(
        attempt(&f, &id, USER, "wrong", IP).await,
        Attempt::Limited(1)
    );
    f.advance(1);
    assert_eq!(attempt(&f, &id, USER, "wrong", IP).await, Attempt::Retry);
    assert_eq!(
        attempt(&f, &id, USER, "wrong", IP).await,
        Attempt::Limited(4)
    );
    f.advance(4);
    assert_eq!(attempt(&f, &id, USER, PASSWORD, IP).await, Attempt::Ok);
}

#[tokio::test]
async fn the_back_off_is_capped_at_fifteen_minutes() {
    // The request outlives the hours of back-off.
    let f = Fixture::with(|s| s.pending_ttl = Duration::from_secs(86_400)).await;
    let id = pending(&f).await;
    let mut last = 0;
    for _ in 0..20 {
        loop {
            match attempt(&f, &id, USER, "wrong", IP).await {
                Attempt::Retry => break,
                Attempt::Limited(s) => {
                    last = s;
                    f.advance(s);
                }
                Attempt::Ok => unreachable!(),
            }
        }
    }
    assert_eq!(last, 900);
}

#[tokio::test]
async fn a_success_clears_the_users_count_on_that_ip() {
    let f = Fixture::new().await;
    let id = pending(&f).await;
    for _ in 0..5 {
        assert_eq!(attempt(&f, &id, USER, "wrong", IP).await, Attempt::Retry);
    }
    assert_eq!(attempt(&f, &id, USER, PASSWORD, IP).await, Attempt::Ok);
    let id = pending(&f).await;
    for _ in 0..5 {
        assert_eq!(attempt(&f, &id, USER, "wrong", IP).await, Attempt::Retry);
    }
    assert_eq!(attempt(&f, &id, USER, PASSWORD, IP).await, Attempt::Ok);
}

#[tokio::test]
async fn failures_are_forgotten_after_the_window() {
    let f = Fixture::new().await;
    let id = pending(&f).await;
    for _ in 0..5 {
        assert_eq!(attempt(&f, &id, USER, "wrong", IP).await, Attempt::Retry);
    }
    f.advance(3600);
    let id = pending(&f).await;
    // A fresh window: five more failures before any back-off.
    for _ in 0..6 {
        assert_eq!(attempt(&f, &id, USER, "wrong", IP).await, Attempt::Retry);
    }
    assert_eq!(
        attempt(&f, &id, USER, "wrong", IP).await,
        Attempt::Limited(1)
    );
}

#[tokio::test]
async fn one_ip_trying_many_usernames_backs_off_for_all_of_them() {
    let f = Fixture::new().await;
    let id = pending(&f).await;
    for i in 0..31 {
        let user = format!("user{i}");
        assert_eq!(
            attempt(&f, &id, &user, "guess", IP).await,
            Attempt::Retry,
            "{i}"
        );
    }
    // The IP's back-off holds back every username, the real user too.
    assert_eq!(
        attempt(&f, &id, USER, PASSWORD, IP).await,
        Attempt::Limited(1)
    );
    assert_eq!(
        attempt(&f, &id, "bob", PASSWORD, IP).await,
        Attempt::Limited(1)
    );
    // Users elsewhere are not locked out by it.
    assert_eq!(
        attempt(&f, &id, USER, PASSWORD, "198.51.100.7").await,
        Attempt::Ok
    );
    let id = pending(&f).await;
    f.advance(1);
    assert_eq!(attempt(&f, &id, USER, PASSWORD, IP).await, Attempt::Ok);
}

#[tokio::test]
async fn a_session_logs_in_again_until_it_expires() {
    let f = Fixture::with(|s| s.session_ttl = Duration::from_secs(100)).await;
    let id = pending(&f).await;
    let session = match f
        .iss
        .login_static(&id, CSRF, USER, PASSWORD, IP)
        .await
        .unwrap()
    {
        LoginOutcome::Ok { session, .. } => session,
        other => panic!("{other:?}"),
    };
    let id = pending(&f).await;
    let next = f
        .iss
        .authorize_resume(&id, CSRF, Some(&session))
        .await
        .unwrap();
    assert!(matches!(next, Next::Consent(_)), "{next:?}");
    f.advance(100);
    let id = pending(&f).await;
    let next = f
        .iss
        .authorize_resume(&id, CSRF, Some(&session))
        .await
        .unwrap();
    assert_eq!(next, Next::Login(id.clone()));
    // A made-up session, or none, asks for the login too.
    let next = f
        .iss
        .authorize_resume(&id, CSRF, Some("forged"))
        .await
        .unwrap();
    assert_eq!(next, Next::Login(id.clone()));
    let next = f.iss.authorize_resume(&id, CSRF, None).await.unwrap();
    assert_eq!(next, Next::Login(id));
}

#[tokio::test]
async fn logout_ends_the_session() {
    let f = Fixture::new().await;
    let id = pending(&f).await;
    let LoginOutcome::Ok { session, .. } = f
        .iss
        .login_static(&id, CSRF, USER, PASSWORD, IP)
        .await
        .unwrap()
    else {
        panic!("login failed");
    };
    assert!(f.iss.session(&session).await.is_some());
    f.iss.logout(&session).await.unwrap();
    assert!(f.iss.session(&session).await.is_none());
}

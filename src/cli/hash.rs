//! `mcpgate hash-password`: the Argon2id PHC string for a static user.
//! The password comes on stdin (first line, its line ending dropped) so it
//! never shows in the process list or the shell history.

use super::Error;
use std::io::{BufRead, Write};

/// Longest password accepted, in bytes.
const MAX_LEN: usize = 1024;

/// Reads one line from `input` and writes its hash and a newline to `out`.
pub(crate) fn run(mut input: impl BufRead, out: &mut impl Write) -> Result<(), Error> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .map_err(|e| Error::Config(format!("reading the password from stdin: {e}")))?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        return Err(Error::Config(
            "no password on stdin (try: printf %s 'secret' | mcpgate hash-password)".into(),
        ));
    }
    if password.len() > MAX_LEN {
        return Err(Error::Config(format!(
            "password longer than {MAX_LEN} bytes"
        )));
    }
    let hash = hash(password)?;
    writeln!(out, "{hash}").map_err(|e| Error::Config(format!("writing the hash: {e}")))
}

#[cfg(feature = "issuer")]
fn hash(password: &str) -> Result<String, Error> {
    crate::issue::users::hash_password(password).map_err(Error::Config)
}

#[cfg(not(feature = "issuer"))]
fn hash(_password: &str) -> Result<String, Error> {
    Err(Error::Config(
        "this mcpgate was built without the `issuer` feature".into(),
    ))
}

#[cfg(all(test, feature = "issuer"))]
mod tests {
    use super::*;

    #[test]
    fn hashes_the_first_line_and_verifies() {
        let mut out = Vec::new();
        run(&b"s3cret\r\nignored\n"[..], &mut out).unwrap();
        let phc = String::from_utf8(out).unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        let parsed = argon2::PasswordHash::new(phc.trim()).unwrap();
        use argon2::PasswordVerifier;
        assert!(argon2::Argon2::default()
            .verify_password(b"s3cret", &parsed)
            .is_ok());
    }

    #[test]
    fn refuses_an_empty_password() {
        let mut out = Vec::new();
        assert!(run(&b"\n"[..], &mut out).is_err());
        assert!(run(&b""[..], &mut out).is_err());
        assert!(out.is_empty());
    }
}

//! Building the outbound HTTPS client, with an error that says what to do.

/// Builds `builder`; on failure the message carries the whole cause chain
/// (reqwest's own says only "builder error") and, since the usual cause is
/// an image without trust roots, where a CA bundle is looked for.
pub(crate) fn build(builder: reqwest::ClientBuilder) -> Result<reqwest::Client, String> {
    builder.build().map_err(|e| {
        let mut msg = String::from("cannot build the HTTPS client");
        let mut cause: Option<&dyn std::error::Error> = Some(&e);
        while let Some(c) = cause {
            msg.push_str(": ");
            msg.push_str(&c.to_string());
            cause = c.source();
        }
        msg.push_str(
            " (trust roots: mount a CA bundle at /etc/ssl/certs/ca-certificates.crt \
             or point SSL_CERT_FILE at one)",
        );
        msg
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn builds_a_client() {
        assert!(super::build(reqwest::Client::builder()).is_ok());
    }
}

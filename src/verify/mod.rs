//! The verifier core: protocol-neutral requests in, decisions out.

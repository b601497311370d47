//! Protocol edges: decode the wire, call the core, encode the answer.

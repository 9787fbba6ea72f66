//! The exact bytes of a customer response, and their hash for the ledger.

use crate::mail::decide::CustomerResponse;
use sha2::{Digest, Sha256};

/// The JSON body `POST tickets/{id}/customer_response` sends.
pub(crate) fn request_body(req: &CustomerResponse) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(req)
}

/// Hex SHA-256 of [`request_body`]: what the ledger records as the body sent.
pub(crate) fn body_hash(req: &CustomerResponse) -> String {
    let digest = match request_body(req) {
        Ok(bytes) => Sha256::digest(&bytes),
        // Unreachable (strings and a unit enum always encode); still deterministic.
        Err(_) => Sha256::digest(format!("{}\n{}", req.date, req.body).as_bytes()),
    };
    hex::encode(digest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::body::BodyType;

    #[test]
    fn the_body_is_the_documented_json_and_its_hash_covers_every_field() {
        let req = CustomerResponse {
            body: "Dzień dobry\n\"quoted\"".into(),
            body_type: BodyType::Plain,
            date: "2025-03-01 10:15".into(),
        };
        let json: serde_json::Value = serde_json::from_slice(&request_body(&req).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"body": "Dzień dobry\n\"quoted\"", "body_type": "PLAIN", "date": "2025-03-01 10:15"})
        );
        let h = body_hash(&req);
        assert_eq!(h.len(), 64);
        assert_eq!(h, body_hash(&req.clone()));
        let later = CustomerResponse {
            date: "2025-03-01 10:16".into(),
            ..req.clone()
        };
        let html = CustomerResponse {
            body_type: BodyType::Html,
            ..req.clone()
        };
        assert_ne!(h, body_hash(&later));
        assert_ne!(h, body_hash(&html));
    }
}

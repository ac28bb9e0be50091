//! CORS headers and origin checks.

use crate::error::EdgeError;

use super::{Edge, EdgeRequest, EdgeResponse};

impl Edge {
    /// CORS headers for a response to `origin` (none when it is absent or not allowed).
    pub fn cors_headers(
        &self,
        origin: Option<&str>,
        own_origin: Option<&str>,
        preflight: bool,
    ) -> Vec<(String, String)> {
        let Some(origin) = origin.filter(|o| self.policy.origin_allowed(o, own_origin)) else {
            return Vec::new();
        };
        let mut headers = vec![
            ("Access-Control-Allow-Origin".to_string(), origin.to_string()),
            ("Vary".to_string(), "Origin".to_string()),
        ];
        if preflight {
            headers.push((
                "Access-Control-Allow-Methods".into(),
                "GET, POST, DELETE, OPTIONS".into(),
            ));
            headers.push((
                "Access-Control-Allow-Headers".into(),
                "authorization, content-type".into(),
            ));
            headers.push(("Access-Control-Max-Age".into(), "600".into()));
        }
        headers
    }

    /// Refuses a request from an origin the policy does not allow.
    pub fn check_origin(&self, origin: Option<&str>, own_origin: Option<&str>) -> Result<(), EdgeError> {
        match origin {
            // Not a browser page (or a same-origin GET, which browsers send without Origin).
            None => Ok(()),
            Some(o) if self.policy.origin_allowed(o, own_origin) => Ok(()),
            Some(o) => Err(EdgeError::Origin(o.to_string())),
        }
    }

    pub(super) fn error_response(&self, e: &EdgeError, req: &EdgeRequest<'_>) -> EdgeResponse {
        let mut headers = self.cors_headers(req.origin, req.own_origin, false);
        headers.push(("Content-Type".into(), "application/json".into()));
        EdgeResponse {
            status: e.status(),
            headers,
            body: e.body(),
        }
    }
}

//! Which region and key set serve a call, and SigV4 signing with the official `aws-sigv4` crate.

use crate::error::ProviderError;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use keyway_core::credential::{BedrockCredential, BedrockKeySet};
use secrecy::{ExposeSecret, SecretString};
use std::time::SystemTime;

pub const DEFAULT_REGION: &str = "us-east-1";
pub const SERVICE: &str = "bedrock";

/// How one call authenticates.
#[derive(Debug)]
pub enum Auth<'a> {
    /// A Bedrock API key, sent as `Authorization: Bearer`.
    Bearer(&'a SecretString),
    Iam(&'a BedrockKeySet),
}

/// The region a call goes to and the key that serves it.
///
/// The region is the one asked for (the route plan's), else the credential's own (an API key's
/// `region`; without a `global` set, the first set's region), else `us-east-1`: the rule of
/// [`BedrockCredential::region_for`]. From IAM key sets the one for that region is used, else the
/// `global` one; no match is `Unsupported` (the router moves on to the next credential).
pub fn choose<'a>(cred: &'a BedrockCredential, wanted: Option<&str>) -> Result<(Auth<'a>, String), ProviderError> {
    let (auth, region) = match cred {
        BedrockCredential::ApiKey { key, region } => {
            (Auth::Bearer(key), wanted.or(region.as_deref()).unwrap_or(DEFAULT_REGION).to_owned())
        }
        BedrockCredential::Iam(sets) => {
            let region = wanted.unwrap_or_else(|| cred.region_for(None, DEFAULT_REGION).unwrap_or(DEFAULT_REGION));
            let set = sets
                .iter()
                .find(|s| s.region == region)
                .or_else(|| sets.iter().find(|s| s.region == "global"))
                .ok_or_else(|| ProviderError::Unsupported(format!("no key set for region {region}")))?;
            (Auth::Iam(set), region.to_owned())
        }
    };
    // The region lands in a host name and the signing scope.
    if region.is_empty() || region == "global" || !region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return Err(ProviderError::Unsupported(format!("`{region}` is not a Bedrock region")));
    }
    Ok((auth, region))
}

#[derive(Debug, thiserror::Error)]
#[error("could not sign the Bedrock request: {0}")]
struct SignError(String);

/// SigV4 headers (`x-amz-date`, `authorization`, `x-amz-security-token`) for a request whose
/// `url` path is already percent-encoded exactly as it will be sent. Bedrock, like every AWS
/// service but S3, signs the path encoded once more (the signer's default).
pub fn sigv4_headers(
    set: &BedrockKeySet,
    region: &str,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    time: SystemTime,
) -> Result<Vec<(String, String)>, ProviderError> {
    let creds = Credentials::new(
        set.access_key_id.clone(),
        set.secret_access_key.expose_secret().to_owned(),
        set.session_token.as_ref().map(|t| t.expose_secret().to_owned()),
        None,
        "keyway",
    );
    let identity = creds.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| ProviderError::Unsupported(SignError(e.to_string()).to_string()))?;
    let signable = SignableRequest::new(method, url, headers.iter().copied(), SignableBody::Bytes(body))
        .map_err(|e| ProviderError::Unsupported(SignError(e.to_string()).to_string()))?;
    let (instructions, _signature) = sign(signable, &params.into())
        .map_err(|e| ProviderError::Unsupported(SignError(e.to_string()).to_string()))?
        .into_parts();
    Ok(instructions.headers().map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(region: &str) -> BedrockKeySet {
        BedrockKeySet {
            region: region.into(),
            access_key_id: format!("AKIA{}", region.to_uppercase().replace('-', "")),
            secret_access_key: SecretString::from("s".to_owned()),
            session_token: None,
        }
    }

    #[test]
    fn region_choice() {
        let both = BedrockCredential::Iam(vec![set("eu-west-1"), set("global")]);
        let (a, r) = choose(&both, Some("eu-west-1")).unwrap();
        assert!(matches!(a, Auth::Iam(s) if s.region == "eu-west-1"));
        assert_eq!(r, "eu-west-1");
        // No region asked for, a `global` set: the default region, through it.
        let (a, r) = choose(&both, None).unwrap();
        assert!(matches!(a, Auth::Iam(s) if s.region == "global"));
        assert_eq!(r, "us-east-1");
        let global = BedrockCredential::Iam(vec![set("global")]);
        let (a, r) = choose(&global, None).unwrap();
        assert!(matches!(a, Auth::Iam(s) if s.region == "global"));
        assert_eq!(r, "us-east-1");
        // A single set for us-west-2 (OpenRouter's `{accessKeyId, secretAccessKey, region}`) signs there.
        let west = BedrockCredential::Iam(vec![set("us-west-2")]);
        assert_eq!(choose(&west, None).map(|x| x.1).ok().as_deref(), Some("us-west-2"));
        let eu = BedrockCredential::Iam(vec![set("eu-west-1")]);
        assert_eq!(choose(&eu, Some("us-west-2")).err(), Some(ProviderError::Unsupported("no key set for region us-west-2".into())));
        let key = BedrockCredential::ApiKey { key: SecretString::from("k".to_owned()), region: Some("ap-south-1".into()) };
        assert_eq!(choose(&key, None).map(|x| x.1).ok().as_deref(), Some("ap-south-1"));
        assert!(choose(&key, Some("evil.com/x")).is_err());
    }
}

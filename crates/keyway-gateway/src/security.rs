//! Checks on URLs that callers supply (Azure `endpoint_url`, Vertex `token_uri`): Keyway would
//! otherwise send a signed request, or a credential, wherever a caller points it (SSRF).

use keyway_core::credential::{AzureCredential, Credential};

/// Whether `url`'s host matches one of the operator's patterns: `host`, `host:port`,
/// or `*.domain` (any subdomain). A pattern without a port matches any port.
pub fn host_allowed(url: &str, patterns: &[String]) -> bool {
    let Ok(u) = url::Url::parse(url) else { return false };
    let Some(host) = u.host_str().map(|h| h.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase()) else {
        return false;
    };
    let port = u.port_or_known_default();
    patterns.iter().any(|p| {
        let p = p.trim().to_ascii_lowercase();
        let (pat_host, pat_port) = match p.rsplit_once(':') {
            Some((h, port)) if !h.ends_with(']') && port.chars().all(|c| c.is_ascii_digit()) && !h.contains(':') => {
                (h.to_owned(), port.parse::<u16>().ok())
            }
            _ => (p.trim_start_matches('[').trim_end_matches(']').to_owned(), None),
        };
        let host_ok = match pat_host.strip_prefix("*.") {
            Some(domain) => host.len() > domain.len() + 1 && host.ends_with(&format!(".{domain}")),
            None => host == pat_host,
        };
        host_ok && pat_port.is_none_or(|pp| Some(pp) == port)
    })
}

/// Every caller-supplied URL inside a credential, checked; the error names the field, not a secret.
pub fn check_credential_urls(cred: &Credential, patterns: &[String]) -> Result<(), String> {
    match cred {
        Credential::Azure(AzureCredential::Deployments(ds)) => {
            for d in ds {
                if !host_allowed(&d.endpoint_url, patterns) {
                    return Err(format!(
                        "`endpoint_url` host is not allowed (allowed: {}); an operator can add it to security.allowed_upstream_hosts",
                        patterns.join(", ")
                    ));
                }
            }
            Ok(())
        }
        Credential::Vertex(v) if !host_allowed(&v.token_uri, patterns) => Err(format!(
            "`token_uri` host is not allowed (allowed: {}); an operator can add it to security.allowed_upstream_hosts",
            patterns.join(", ")
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pats(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn patterns() {
        let p = pats(&["*.openai.azure.com", "oauth2.googleapis.com", "127.0.0.1:9000"]);
        assert!(host_allowed("https://res.openai.azure.com/openai/x", &p));
        assert!(!host_allowed("https://openai.azure.com/", &p));
        assert!(!host_allowed("https://evil.com/?x=.openai.azure.com", &p));
        assert!(!host_allowed("https://res.openai.azure.com.evil.com/", &p));
        assert!(host_allowed("https://oauth2.googleapis.com/token", &p));
        assert!(host_allowed("http://127.0.0.1:9000/token", &p));
        assert!(!host_allowed("http://127.0.0.1:9001/token", &p));
        assert!(!host_allowed("http://169.254.169.254/latest/meta-data", &p));
        assert!(!host_allowed("not a url", &p));
        assert!(host_allowed("http://localhost:1234/", &pats(&["localhost"])));
    }
}

//! Credential shapes per provider, their validation, and their (secret) JSON form.
//!
//! A credential arrives as a JSON string or value (`key` on `/api/v1/byok`), is validated here
//! into a typed [`Credential`], and is stored encrypted as [`Credential::to_secret_json`].
//! Secrets live in [`SecretString`]s so that `Debug` and logs never show them.

use crate::provider::{Protocol, ProviderSlug};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Map, Value};

/// A decrypted, validated provider credential.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A bearer / `x-api-key` / `x-goog-api-key` style key.
    ApiKey(SecretString),
    Azure(AzureCredential),
    Bedrock(BedrockCredential),
    Vertex(VertexCredential),
}

#[derive(Debug, Clone)]
pub enum AzureCredential {
    /// One entry per deployment; the model slug picks the deployment.
    Deployments(Vec<AzureDeployment>),
    /// A resource; `model_mappings` name the deployment for a slug (else the model's own name).
    Resource {
        api_key: SecretString,
        resource_name: String,
        model_mappings: Vec<ModelMapping>,
    },
}

#[derive(Debug, Clone)]
pub struct AzureDeployment {
    pub model_slug: String,
    pub endpoint_url: String,
    pub api_key: SecretString,
    pub model_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ModelMapping {
    pub gateway_model_slug: String,
    pub custom_model_id: String,
}

#[derive(Debug, Clone)]
pub enum BedrockCredential {
    /// A Bedrock API key (sent as `Authorization: Bearer`).
    ApiKey { key: SecretString, region: Option<String> },
    /// IAM key sets per region; a set whose region is `global` serves any region.
    Iam(Vec<BedrockKeySet>),
}

/// Where a Bedrock credential can send calls, without its secrets (what routing needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BedrockScope {
    /// A Bedrock API key: any region; its own `region` when the request names none.
    Anywhere { home: Option<String> },
    /// IAM key sets by region, in the order given; `global` serves any region without a set of its own.
    Sets(Vec<String>),
}

impl BedrockScope {
    pub fn of(c: &BedrockCredential) -> Self {
        match c {
            BedrockCredential::ApiKey { region, .. } => Self::Anywhere { home: region.clone() },
            BedrockCredential::Iam(sets) => Self::Sets(sets.iter().map(|s| s.region.clone()).collect()),
        }
    }

    /// The region a call goes to, or `None` when this credential can't serve the region asked for.
    ///
    /// A request that names a region gets it (from the set for it, else the `global` set).
    /// Otherwise the credential's own region is where its requests go: an API key's `region`; for
    /// key sets, `default` (the catalog's region for the model) when a `global` set covers it, else
    /// the first set's region. An API key without a region goes to `default` too.
    pub fn region_for<'a>(&'a self, wanted: Option<&'a str>, default: &'a str) -> Option<&'a str> {
        match self {
            Self::Anywhere { home } => Some(wanted.or(home.as_deref()).unwrap_or(default)),
            Self::Sets(sets) => sets_region(sets.iter().map(String::as_str), wanted, default),
        }
    }
}

impl BedrockCredential {
    /// [`BedrockScope::region_for`] on the credential itself (borrowing its region names).
    pub fn region_for<'a>(&'a self, wanted: Option<&'a str>, default: &'a str) -> Option<&'a str> {
        match self {
            Self::ApiKey { region, .. } => Some(wanted.or(region.as_deref()).unwrap_or(default)),
            Self::Iam(sets) => sets_region(sets.iter().map(|s| s.region.as_str()), wanted, default),
        }
    }
}

fn sets_region<'a>(mut sets: impl Iterator<Item = &'a str> + Clone, wanted: Option<&'a str>, default: &'a str) -> Option<&'a str> {
    match wanted {
        Some(r) => sets.any(|s| s == r || s == "global").then_some(r),
        None if sets.clone().any(|s| s == "global") => Some(default),
        None => sets.next().or(Some(default)),
    }
}

#[derive(Debug, Clone)]
pub struct BedrockKeySet {
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub session_token: Option<SecretString>,
}

#[derive(Debug, Clone)]
pub struct VertexCredential {
    pub project_id: String,
    pub client_email: String,
    pub private_key: SecretString,
    pub private_key_id: Option<String>,
    pub token_uri: String,
    pub location: String,
}

pub const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// Why a credential was refused; the message names the field and never echoes a secret.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("invalid {provider} credential: {message}")]
pub struct CredentialError {
    pub provider: ProviderSlug,
    pub message: String,
}

type R<T> = Result<T, CredentialError>;

struct Ctx(ProviderSlug);

impl Ctx {
    fn err<T>(&self, message: impl Into<String>) -> R<T> {
        Err(CredentialError { provider: self.0, message: message.into() })
    }

    fn obj<'a>(&self, v: &'a Value, what: &str) -> R<&'a Map<String, Value>> {
        match v.as_object() {
            Some(m) => Ok(m),
            None => self.err(format!("{what} must be a JSON object")),
        }
    }

    /// A required non-empty string field; accepts each of `names` (camelCase and snake_case).
    fn string(&self, m: &Map<String, Value>, names: &[&str]) -> R<String> {
        match self.opt_string(m, names)? {
            Some(s) => Ok(s),
            None => self.err(format!("`{}` is required", names[0])),
        }
    }

    fn opt_string(&self, m: &Map<String, Value>, names: &[&str]) -> R<Option<String>> {
        for n in names {
            match m.get(*n) {
                None | Some(Value::Null) => continue,
                Some(Value::String(s)) if s.trim().is_empty() => {
                    return self.err(format!("`{n}` must not be empty"))
                }
                Some(Value::String(s)) => return Ok(Some(s.trim().to_owned())),
                Some(_) => return self.err(format!("`{n}` must be a string")),
            }
        }
        Ok(None)
    }

    fn secret(&self, m: &Map<String, Value>, names: &[&str]) -> R<SecretString> {
        self.string(m, names).map(SecretString::from)
    }
}

fn parse_json_string(s: &str) -> Option<Value> {
    let t = s.trim_start();
    if t.starts_with('{') || t.starts_with('[') {
        serde_json::from_str(t).ok()
    } else {
        None
    }
}

fn valid_region(r: &str) -> bool {
    !r.is_empty() && r.len() <= 32 && r.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn check_https_url(cx: &Ctx, field: &str, s: &str) -> R<()> {
    match url::Url::parse(s) {
        Ok(u) if (u.scheme() == "https" || u.scheme() == "http") && u.host_str().is_some() => Ok(()),
        _ => cx.err(format!("`{field}` must be an absolute http(s) URL")),
    }
}

impl Credential {
    /// Validates `value` (the `key` field of a create/patch body) as a credential for `provider`.
    /// A JSON string holding a JSON object/array is accepted for the structured shapes.
    pub fn parse(provider: ProviderSlug, value: &Value) -> R<Credential> {
        let cx = Ctx(provider);
        let parsed;
        let value = match value {
            Value::String(s) if provider.protocol() != Protocol::OpenAiCompat
                && provider.protocol() != Protocol::Anthropic
                && provider.protocol() != Protocol::Gemini =>
            {
                match parse_json_string(s) {
                    Some(v) => {
                        parsed = v;
                        &parsed
                    }
                    None => value,
                }
            }
            v => v,
        };
        match provider.protocol() {
            Protocol::OpenAiCompat | Protocol::Anthropic | Protocol::Gemini => match value {
                Value::String(s) if s.trim().is_empty() => cx.err("`key` must not be empty"),
                Value::String(s) if s.trim().chars().any(|c| c.is_control() || c == ' ') => {
                    cx.err("`key` must be a single token without spaces or control characters")
                }
                Value::String(s) => Ok(Credential::ApiKey(SecretString::from(s.trim().to_owned()))),
                _ => cx.err("`key` must be a string"),
            },
            Protocol::Azure => Self::parse_azure(&cx, value).map(Credential::Azure),
            Protocol::Bedrock => Self::parse_bedrock(&cx, value).map(Credential::Bedrock),
            Protocol::Vertex => Self::parse_vertex(&cx, value).map(Credential::Vertex),
        }
    }

    fn parse_azure(cx: &Ctx, v: &Value) -> R<AzureCredential> {
        match v {
            Value::Array(items) => {
                if items.is_empty() {
                    return cx.err("the deployment list must not be empty");
                }
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let m = cx.obj(item, &format!("deployment {i}"))?;
                    let endpoint_url = cx.string(m, &["endpoint_url", "endpointUrl"])?;
                    check_https_url(cx, "endpoint_url", &endpoint_url)?;
                    out.push(AzureDeployment {
                        model_slug: cx.string(m, &["model_slug", "modelSlug"])?,
                        endpoint_url,
                        api_key: cx.secret(m, &["api_key", "apiKey"])?,
                        model_id: cx.string(m, &["model_id", "modelId"])?,
                    });
                }
                Ok(AzureCredential::Deployments(out))
            }
            // One deployment as a bare object (OpenRouter's page shows it so): a list of one.
            Value::Object(m) if !m.contains_key("resource_name") && !m.contains_key("resourceName")
                && (m.contains_key("model_slug") || m.contains_key("modelSlug") || m.contains_key("endpoint_url") || m.contains_key("endpointUrl")) =>
            {
                Self::parse_azure(cx, &Value::Array(vec![v.clone()]))
            }
            // Edgee's `{endpoint, api_key}`: the resource's endpoint names the resource.
            Value::Object(m) if !m.contains_key("resource_name") && !m.contains_key("resourceName") && m.contains_key("endpoint") => {
                let endpoint = cx.string(m, &["endpoint"])?;
                let host = url::Url::parse(&endpoint).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default();
                let Some(resource) = host.strip_suffix(".openai.azure.com").or_else(|| host.strip_suffix(".cognitiveservices.azure.com")) else {
                    return cx.err("`endpoint` must be an Azure OpenAI resource endpoint (`https://<resource>.openai.azure.com/`); for other endpoints give deployments `{model_slug, endpoint_url, api_key, model_id}`");
                };
                let mut r = m.clone();
                r.remove("endpoint");
                r.insert("resource_name".into(), Value::String(resource.to_owned()));
                Self::parse_azure(cx, &Value::Object(r))
            }
            Value::Object(m) => {
                let resource_name = cx.string(m, &["resource_name", "resourceName"])?;
                if !resource_name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                    return cx.err("`resource_name` may hold only letters, digits and dashes");
                }
                let model_mappings = match m.get("model_mappings").or_else(|| m.get("modelMappings")) {
                    None | Some(Value::Null) => Vec::new(),
                    Some(v) => parse_model_mappings(v).map_err(|e| CredentialError { provider: cx.0, message: e })?,
                };
                Ok(AzureCredential::Resource { api_key: cx.secret(m, &["api_key", "apiKey"])?, resource_name, model_mappings })
            }
            Value::String(_) => cx.err("an Azure key must be `{api_key, resource_name}` or a list of deployments"),
            _ => cx.err("an Azure key must be a JSON object or array"),
        }
    }

    fn parse_bedrock(cx: &Ctx, v: &Value) -> R<BedrockCredential> {
        let key_set = |m: &Map<String, Value>, default_region: Option<&str>| -> R<BedrockKeySet> {
            let region = match cx.opt_string(m, &["region"])? {
                Some(r) => r,
                None => match default_region {
                    Some(r) => r.to_owned(),
                    None => return cx.err("`region` is required for each key set"),
                },
            };
            if !valid_region(&region) {
                return cx.err(format!("`region` `{region}` is not a region name"));
            }
            let access_key_id = cx.string(m, &["accessKeyId", "access_key_id"])?;
            if access_key_id.len() < 16 || !access_key_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return cx.err("`accessKeyId` is not an AWS access key id");
            }
            Ok(BedrockKeySet {
                region,
                access_key_id,
                secret_access_key: cx.secret(m, &["secretAccessKey", "secret_access_key"])?,
                session_token: cx.opt_string(m, &["sessionToken", "session_token"])?.map(SecretString::from),
            })
        };
        match v {
            Value::String(s) if s.trim().is_empty() => cx.err("`key` must not be empty"),
            Value::String(s) => Ok(BedrockCredential::ApiKey { key: SecretString::from(s.trim().to_owned()), region: None }),
            Value::Object(m) if m.contains_key("apiKey") || m.contains_key("api_key") => {
                let region = cx.opt_string(m, &["region"])?;
                if let Some(r) = &region {
                    if !valid_region(r) {
                        return cx.err(format!("`region` `{r}` is not a region name"));
                    }
                }
                Ok(BedrockCredential::ApiKey { key: cx.secret(m, &["apiKey", "api_key"])?, region })
            }
            // Edgee's region-keyed form: `{"us-east-1": {accessKeyId, secretAccessKey}, "global": {...}}`.
            Value::Object(m) if !m.is_empty() && m.values().all(Value::is_object) => {
                let mut sets = Vec::with_capacity(m.len());
                for (region, item) in m {
                    let mut set = key_set(cx.obj(item, &format!("key set `{region}`"))?, Some(region))?;
                    if set.region != *region {
                        return cx.err(format!("key set `{region}` names another region (`{}`)", set.region));
                    }
                    set.region = region.clone();
                    sets.push(set);
                }
                Ok(BedrockCredential::Iam(sets))
            }
            Value::Object(m) => Ok(BedrockCredential::Iam(vec![key_set(m, Some("global"))?])),
            Value::Array(items) => {
                if items.is_empty() {
                    return cx.err("the region list must not be empty");
                }
                let mut sets: Vec<BedrockKeySet> = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let set = key_set(cx.obj(item, &format!("key set {i}"))?, None)?;
                    if sets.iter().any(|s| s.region == set.region) {
                        return cx.err(format!("region `{}` appears twice", set.region));
                    }
                    sets.push(set);
                }
                Ok(BedrockCredential::Iam(sets))
            }
            _ => cx.err("a Bedrock key must be an API key string, an IAM key object or a list of them"),
        }
    }

    fn parse_vertex(cx: &Ctx, v: &Value) -> R<VertexCredential> {
        let m = match v {
            Value::Object(m) => m,
            _ => return cx.err("a Vertex key must be a service-account JSON object"),
        };
        // Vercel's request-scoped shape: {project, location, googleCredentials: {privateKey, clientEmail}}.
        if let Some(gc) = m.get("googleCredentials") {
            let g = cx.obj(gc, "`googleCredentials`")?;
            let private_key = cx.string(g, &["privateKey", "private_key"])?;
            check_pem(cx, &private_key)?;
            // The same checks as a service-account file's.
            let client_email = cx.string(g, &["clientEmail", "client_email"])?;
            if !client_email.contains('@') {
                return cx.err("`googleCredentials.clientEmail` must be an email address");
            }
            let token_uri = cx.opt_string(g, &["tokenUri", "token_uri"])?.unwrap_or_else(|| GOOGLE_TOKEN_URI.to_owned());
            check_https_url(cx, "googleCredentials.tokenUri", &token_uri)?;
            let location = cx.opt_string(m, &["location", "region"])?.unwrap_or_else(|| "global".to_owned());
            if !valid_region(&location) {
                return cx.err(format!("`location` `{location}` is not a location name"));
            }
            return Ok(VertexCredential {
                project_id: cx.string(m, &["project", "project_id"])?,
                client_email,
                private_key: SecretString::from(private_key),
                private_key_id: cx.opt_string(g, &["privateKeyId", "private_key_id"])?,
                token_uri,
                location,
            });
        }
        match cx.opt_string(m, &["type"])?.as_deref() {
            Some("service_account") => {}
            Some(other) => return cx.err(format!("`type` must be `service_account`, not `{other}`")),
            None => return cx.err("`type` is required (`service_account`)"),
        }
        let private_key = cx.string(m, &["private_key"])?;
        check_pem(cx, &private_key)?;
        let client_email = cx.string(m, &["client_email"])?;
        if !client_email.contains('@') {
            return cx.err("`client_email` must be an email address");
        }
        let token_uri = cx.string(m, &["token_uri"])?;
        check_https_url(cx, "token_uri", &token_uri)?;
        let location = cx.opt_string(m, &["location", "region"])?.unwrap_or_else(|| "global".to_owned());
        if !valid_region(&location) {
            return cx.err(format!("`location` `{location}` is not a location name"));
        }
        Ok(VertexCredential {
            project_id: cx.string(m, &["project_id"])?,
            client_email,
            private_key: SecretString::from(private_key),
            private_key_id: cx.opt_string(m, &["private_key_id"])?,
            token_uri,
            location,
        })
    }

    /// The credential's JSON form, secrets included: only for encryption at rest and for the
    /// adapters. Callers must wrap the serialised bytes in a zeroizing buffer.
    pub fn to_secret_json(&self) -> Value {
        match self {
            Credential::ApiKey(k) => Value::String(k.expose_secret().to_owned()),
            Credential::Azure(AzureCredential::Deployments(ds)) => Value::Array(
                ds.iter()
                    .map(|d| {
                        json!({"model_slug": d.model_slug, "endpoint_url": d.endpoint_url,
                               "api_key": d.api_key.expose_secret(), "model_id": d.model_id})
                    })
                    .collect(),
            ),
            Credential::Azure(AzureCredential::Resource { api_key, resource_name, model_mappings }) => json!({
                "api_key": api_key.expose_secret(), "resource_name": resource_name,
                "model_mappings": model_mappings,
            }),
            Credential::Bedrock(BedrockCredential::ApiKey { key, region }) => {
                json!({"apiKey": key.expose_secret(), "region": region})
            }
            Credential::Bedrock(BedrockCredential::Iam(sets)) => Value::Array(
                sets.iter()
                    .map(|s| {
                        json!({"region": s.region, "accessKeyId": s.access_key_id,
                               "secretAccessKey": s.secret_access_key.expose_secret(),
                               "sessionToken": s.session_token.as_ref().map(|t| t.expose_secret().to_owned())})
                    })
                    .collect(),
            ),
            Credential::Vertex(v) => json!({
                "type": "service_account", "project_id": v.project_id, "client_email": v.client_email,
                "private_key": v.private_key.expose_secret(), "private_key_id": v.private_key_id,
                "token_uri": v.token_uri, "location": v.location,
            }),
        }
    }

    /// The literal secret strings inside, so that error messages can be scrubbed of them.
    pub fn secret_strings(&self) -> Vec<&str> {
        match self {
            Credential::ApiKey(k) => vec![k.expose_secret()],
            Credential::Azure(AzureCredential::Deployments(ds)) => ds.iter().map(|d| d.api_key.expose_secret()).collect(),
            Credential::Azure(AzureCredential::Resource { api_key, .. }) => vec![api_key.expose_secret()],
            Credential::Bedrock(BedrockCredential::ApiKey { key, .. }) => vec![key.expose_secret()],
            Credential::Bedrock(BedrockCredential::Iam(sets)) => sets
                .iter()
                .flat_map(|s| {
                    std::iter::once(s.secret_access_key.expose_secret())
                        .chain(s.session_token.as_ref().map(|t| t.expose_secret()))
                })
                .collect(),
            Credential::Vertex(v) => vec![v.private_key.expose_secret()],
        }
    }

    /// A masked, human-readable summary (`sk-...AbCd`, `AKIA...WXYZ`, a service-account email).
    pub fn label(&self) -> String {
        match self {
            Credential::ApiKey(k) => mask(k.expose_secret()),
            Credential::Azure(AzureCredential::Deployments(ds)) => match ds.first() {
                Some(d) if ds.len() == 1 => format!("{} ({})", host_of(&d.endpoint_url), mask(d.api_key.expose_secret())),
                Some(d) => format!("{} deployments, {} ...", ds.len(), host_of(&d.endpoint_url)),
                None => String::new(),
            },
            Credential::Azure(AzureCredential::Resource { api_key, resource_name, .. }) => {
                format!("{resource_name} ({})", mask(api_key.expose_secret()))
            }
            Credential::Bedrock(BedrockCredential::ApiKey { key, .. }) => mask(key.expose_secret()),
            Credential::Bedrock(BedrockCredential::Iam(sets)) => sets
                .iter()
                .map(|s| format!("{} {}", mask(&s.access_key_id), s.region))
                .collect::<Vec<_>>()
                .join(", "),
            Credential::Vertex(v) => v.client_email.clone(),
        }
    }
}

fn host_of(u: &str) -> String {
    url::Url::parse(u).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default()
}

fn check_pem(cx: &Ctx, pem: &str) -> R<()> {
    if crate::rsa_pem::is_rsa_private_key(pem) {
        Ok(())
    } else {
        cx.err("`private_key` is not an RSA private key in PEM form")
    }
}

/// `[{gateway_model_slug, custom_model_id}]` or `{"slug": "id"}`.
pub fn parse_model_mappings(v: &Value) -> Result<Vec<ModelMapping>, String> {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|it| {
                let slug = it.get("gateway_model_slug").or_else(|| it.get("gatewayModelSlug")).and_then(Value::as_str);
                let id = it.get("custom_model_id").or_else(|| it.get("customModelId")).and_then(Value::as_str);
                match (slug, id) {
                    (Some(s), Some(i)) if !s.is_empty() && !i.is_empty() => {
                        Ok(ModelMapping { gateway_model_slug: s.to_owned(), custom_model_id: i.to_owned() })
                    }
                    _ => Err("each model mapping needs non-empty `gateway_model_slug` and `custom_model_id`".to_owned()),
                }
            })
            .collect(),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| match v.as_str() {
                Some(id) if !id.is_empty() => Ok(ModelMapping { gateway_model_slug: k.clone(), custom_model_id: id.to_owned() }),
                _ => Err(format!("model mapping for `{k}` must be a non-empty string")),
            })
            .collect(),
        Value::Null => Ok(Vec::new()),
        _ => Err("`model_mappings` must be a list of {gateway_model_slug, custom_model_id}".to_owned()),
    }
}

/// `sk-proj-abcdef...WXYZ` -> `sk-...WXYZ`: a short, non-secret prefix and the last four characters.
pub fn mask(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() < 12 {
        return "...".to_owned() + &chars[chars.len().saturating_sub(2)..].iter().collect::<String>();
    }
    let prefix: String = match secret.find(['-', '_']) {
        Some(i) if i <= 4 => secret[..=i].to_owned(),
        _ => chars[..4].iter().collect(),
    };
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{prefix}...{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = include_str!("../testdata/test-rsa-key.pem");

    fn parse(p: ProviderSlug, v: Value) -> R<Credential> {
        Credential::parse(p, &v)
    }

    #[test]
    fn masks_keys() {
        assert_eq!(mask("sk-proj-1234567890AbCd"), "sk-...AbCd");
        assert_eq!(mask("AKIAIOSFODNN7EXAMPLE"), "AKIA...MPLE");
        assert_eq!(mask("short"), "...rt");
    }

    #[test]
    fn api_key_shapes() {
        assert!(matches!(parse(ProviderSlug::OpenAi, json!("sk-abc")), Ok(Credential::ApiKey(_))));
        assert!(parse(ProviderSlug::OpenAi, json!("")).is_err());
        assert!(parse(ProviderSlug::OpenAi, json!("a b")).is_err());
        assert!(parse(ProviderSlug::OpenAi, json!({"k": 1})).is_err());
    }

    #[test]
    fn azure_shapes() {
        let dep = json!([{"model_slug": "openai/gpt-4o", "endpoint_url": "https://x.openai.azure.com/openai/deployments/d/chat/completions?api-version=2024-10-21", "api_key": "k", "model_id": "d"}]);
        assert!(matches!(parse(ProviderSlug::Azure, dep.clone()), Ok(Credential::Azure(AzureCredential::Deployments(_)))));
        // also as a JSON string
        assert!(parse(ProviderSlug::Azure, Value::String(dep.to_string())).is_ok());
        assert!(parse(ProviderSlug::Azure, json!({"api_key": "k", "resource_name": "res"})).is_ok());
        assert!(parse(ProviderSlug::Azure, json!({"api_key": "k", "resource_name": "my-res-01"})).is_ok());
        // The name is filled into `https://{resource}.openai.azure.com`: nothing may steer the host.
        for bad in ["evil.com/", "evil.com", "a.b", "res:8443", "res@evil.com", "res/x", "res?x=1", "res#", "re s", "", "\u{0430}pple"] {
            let e = parse(ProviderSlug::Azure, json!({"api_key": "k", "resource_name": bad}));
            assert!(e.is_err(), "resource_name {bad:?} must be refused");
        }
        // Edgee's `{endpoint, api_key}` names the resource by its endpoint.
        match parse(ProviderSlug::Azure, json!({"endpoint": "https://my-res.openai.azure.com/", "api_key": "k"})) {
            Ok(Credential::Azure(AzureCredential::Resource { resource_name, .. })) => assert_eq!(resource_name, "my-res"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(parse(ProviderSlug::Azure, json!({"endpoint": "https://evil.example.com/", "api_key": "k"})).is_err());
        // OpenRouter's single deployment object is a list of one.
        let single = json!({"model_slug": "mistralai/mistral-large", "endpoint_url": "https://x.services.ai.azure.com/models/chat/completions?api-version=2024-05-01-preview", "api_key": "k", "model_id": "mistral-large-2411"});
        match parse(ProviderSlug::Azure, single.clone()) {
            Ok(Credential::Azure(AzureCredential::Deployments(ds))) => {
                assert_eq!((ds.len(), ds[0].model_slug.as_str(), ds[0].model_id.as_str()), (1, "mistralai/mistral-large", "mistral-large-2411"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(parse(ProviderSlug::Azure, Value::String(single.to_string())).is_ok());
        let e = parse(ProviderSlug::Azure, json!({"model_slug": "m", "endpoint_url": "https://x.openai.azure.com/"})).err().map(|e| e.message);
        assert_eq!(e.as_deref(), Some("`api_key` is required"));
        let e = parse(ProviderSlug::Azure, json!({"api_key": "k"})).err().map(|e| e.message);
        assert_eq!(e.as_deref(), Some("`resource_name` is required"));
        assert!(parse(ProviderSlug::Azure, json!([{"model_slug": "m", "endpoint_url": "not a url", "api_key": "k", "model_id": "d"}])).is_err());
        assert!(parse(ProviderSlug::Azure, json!("plain")).is_err());
    }

    #[test]
    fn bedrock_shapes() {
        assert!(matches!(parse(ProviderSlug::AmazonBedrock, json!("ABSKabc")), Ok(Credential::Bedrock(BedrockCredential::ApiKey { .. }))));
        let one = json!({"accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": "s", "region": "us-east-1"});
        assert!(parse(ProviderSlug::AmazonBedrock, one).is_ok());
        let multi = json!([{"region": "global", "accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": "s"},
                           {"region": "eu-west-1", "accessKeyId": "AKIAIOSFODNN7EXAMPL2", "secretAccessKey": "t"}]);
        match parse(ProviderSlug::AmazonBedrock, multi) {
            Ok(Credential::Bedrock(BedrockCredential::Iam(s))) => assert_eq!(s.len(), 2),
            other => panic!("unexpected {other:?}"),
        }
        let dup = json!([{"region": "global", "accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": "s"},
                         {"region": "global", "accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": "s"}]);
        assert!(parse(ProviderSlug::AmazonBedrock, dup).is_err());
        assert!(parse(ProviderSlug::AmazonBedrock, json!([{"accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": "s"}])).is_err());
        assert!(parse(ProviderSlug::AmazonBedrock, json!({"accessKeyId": "short", "secretAccessKey": "s"})).is_err());
        // Edgee's region-keyed object.
        let keyed = json!({"us-east-1": {"accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": "s"},
                           "global": {"accessKeyId": "AKIAIOSFODNN7EXAMPL2", "secretAccessKey": "t"}});
        match parse(ProviderSlug::AmazonBedrock, keyed) {
            Ok(Credential::Bedrock(BedrockCredential::Iam(s))) => {
                let mut regions: Vec<&str> = s.iter().map(|k| k.region.as_str()).collect();
                regions.sort_unstable();
                assert_eq!(regions, ["global", "us-east-1"]);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(parse(ProviderSlug::AmazonBedrock, json!({"Not A Region": {"accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": "s"}})).is_err());
    }

    #[test]
    fn bedrock_scope_region_rules() {
        let sets = |rs: &[&str]| BedrockScope::Sets(rs.iter().map(|r| (*r).to_owned()).collect());
        // (sets, request region, want)
        let cases: &[(&[&str], Option<&str>, Option<&str>)] = &[
            (&["us-west-2"], None, Some("us-west-2")),
            (&["us-west-2"], Some("us-west-2"), Some("us-west-2")),
            (&["us-west-2"], Some("us-east-1"), None),
            (&["global"], None, Some("us-east-1")),
            (&["global"], Some("ap-south-1"), Some("ap-south-1")),
            (&["global", "eu-west-1"], None, Some("us-east-1")),
            (&["global", "eu-west-1"], Some("us-east-2"), Some("us-east-2")),
            (&["eu-west-1", "us-west-2"], None, Some("eu-west-1")),
            (&["eu-west-1", "us-west-2"], Some("us-west-2"), Some("us-west-2")),
        ];
        for (rs, wanted, want) in cases {
            assert_eq!(sets(rs).region_for(*wanted, "us-east-1"), *want, "{rs:?} {wanted:?}");
        }
        let key = BedrockScope::Anywhere { home: Some("ap-south-1".into()) };
        assert_eq!(key.region_for(None, "us-east-1"), Some("ap-south-1"));
        assert_eq!(key.region_for(Some("eu-west-1"), "us-east-1"), Some("eu-west-1"));
        assert_eq!(BedrockScope::Anywhere { home: None }.region_for(None, "us-east-1"), Some("us-east-1"));
    }

    #[test]
    fn vertex_shapes() {
        let sa = json!({"type": "service_account", "project_id": "p", "private_key": PEM,
                        "client_email": "sa@p.iam.gserviceaccount.com", "token_uri": "https://oauth2.googleapis.com/token"});
        match parse(ProviderSlug::GoogleVertex, sa.clone()) {
            Ok(Credential::Vertex(v)) => assert_eq!(v.location, "global"),
            other => panic!("unexpected {other:?}"),
        }
        let mut bad = sa.clone();
        bad["private_key"] = json!("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n");
        let e = parse(ProviderSlug::GoogleVertex, bad).err().map(|e| e.message);
        assert_eq!(e.as_deref(), Some("`private_key` is not an RSA private key in PEM form"));
        let mut wrong = sa;
        wrong["type"] = json!("authorized_user");
        assert!(parse(ProviderSlug::GoogleVertex, wrong).is_err());
        let vercel = json!({"project": "p", "location": "us-central1", "googleCredentials": {"privateKey": PEM, "clientEmail": "a@b"}});
        assert!(parse(ProviderSlug::GoogleVertex, vercel).is_ok());
    }

    #[test]
    fn vertex_vercel_shape_maps_and_is_checked_like_a_service_account() {
        let base = json!({"project": "proj-7", "googleCredentials": {"privateKey": PEM, "clientEmail": "sa@proj-7.iam.gserviceaccount.com"}});
        match parse(ProviderSlug::GoogleVertex, base.clone()) {
            Ok(Credential::Vertex(v)) => {
                assert_eq!(v.project_id, "proj-7");
                assert_eq!(v.location, "global", "no location -> global");
                assert_eq!(v.token_uri, GOOGLE_TOKEN_URI);
                assert_eq!(v.client_email, "sa@proj-7.iam.gserviceaccount.com");
                assert_eq!(v.private_key_id, None);
            }
            other => panic!("unexpected {other:?}"),
        }
        let mut located = base.clone();
        located["location"] = json!("europe-west4");
        located["googleCredentials"]["tokenUri"] = json!("https://oauth2.example.test/token");
        match parse(ProviderSlug::GoogleVertex, located) {
            Ok(Credential::Vertex(v)) => assert_eq!((v.location.as_str(), v.token_uri.as_str()), ("europe-west4", "https://oauth2.example.test/token")),
            other => panic!("unexpected {other:?}"),
        }
        // Also as a JSON string, and its stored form parses back as a service account.
        let Ok(c) = parse(ProviderSlug::GoogleVertex, Value::String(base.to_string())) else { panic!("string form") };
        assert!(matches!(parse(ProviderSlug::GoogleVertex, c.to_secret_json()), Ok(Credential::Vertex(v)) if v.project_id == "proj-7"));

        let refused = |patch: &dyn Fn(&mut Value), want: &str| {
            let mut v = base.clone();
            patch(&mut v);
            let e = parse(ProviderSlug::GoogleVertex, v).err().map(|e| e.message).unwrap_or_default();
            assert!(e.contains(want), "{e:?} should mention {want:?}");
            assert!(!e.contains("PRIVATE KEY"));
        };
        refused(&|v| v["location"] = json!("us-central1/../x"), "is not a location name");
        refused(&|v| v["location"] = json!("US_CENTRAL1"), "is not a location name");
        refused(&|v| v["googleCredentials"]["clientEmail"] = json!("not-an-email"), "email address");
        refused(&|v| v["googleCredentials"]["tokenUri"] = json!("file:///etc/passwd"), "tokenUri");
        refused(&|v| v["googleCredentials"]["tokenUri"] = json!("not a url"), "tokenUri");
        refused(&|v| v["googleCredentials"]["privateKey"] = json!("nope"), "RSA private key");
        refused(&|v| { v.as_object_mut().map(|m| m.remove("project")); }, "`project` is required");
        refused(&|v| v["googleCredentials"] = json!("x"), "must be a JSON object");
    }

    #[test]
    fn secret_json_round_trips_and_debug_hides() {
        let c = parse(ProviderSlug::AmazonBedrock, json!({"accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": "topsecretvalue", "region": "us-east-1"}));
        let c = c.ok();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("topsecretvalue"));
        let c = c.map(|c| c.to_secret_json());
        let back = c.as_ref().map(|j| parse(ProviderSlug::AmazonBedrock, j.clone()).is_ok());
        assert_eq!(back, Some(true));
    }
}

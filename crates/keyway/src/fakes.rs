//! `keyway fakes`: every fake upstream on loopback, for test harnesses in other languages.
//!
//! Prints one JSON line — each fake's URL by name, and under `base_urls` the value to give
//! `KEYWAY_PROVIDERS__<SLUG>__BASE_URL` for each provider slug — then serves until killed.
//! Each fake also answers `/__fake/calls`, `/__fake/fault` and `/__fake/reset`.

use keyway_fakes::bedrock::BedrockConfig;
use keyway_fakes::server::FakeOptions;
use keyway_fakes::FakeServer;
use serde_json::{json, Map, Value};

/// An IAM key pair the Bedrock fake accepts (SigV4), so demos can add a structured credential.
pub const BEDROCK_ACCESS_KEY_ID: &str = "AKIAKEYWAYFAKE000001";
pub const BEDROCK_SECRET_ACCESS_KEY: &str = "keyway-fake-secret-access-key-0000000001";

/// The running fakes; dropping this stops them.
pub struct Fakes {
    pub openai: FakeServer,
    pub anthropic: FakeServer,
    pub bedrock: FakeServer,
    pub azure: FakeServer,
    pub gemini: FakeServer,
}

impl Fakes {
    pub async fn start() -> std::io::Result<Self> {
        let opts = FakeOptions::default;
        Ok(Self {
            openai: keyway_fakes::openai::start(opts()).await?,
            anthropic: keyway_fakes::anthropic::start(opts()).await?,
            bedrock: keyway_fakes::bedrock::start(opts(), BedrockConfig::default().with_key(BEDROCK_ACCESS_KEY_ID, BEDROCK_SECRET_ACCESS_KEY)).await?,
            azure: keyway_fakes::azure::start(opts()).await?,
            gemini: keyway_fakes::gemini::start(opts()).await?,
        })
    }

    /// Provider slug -> the base URL Keyway should use to reach that fake.
    pub fn base_urls(&self) -> Vec<(&'static str, String)> {
        vec![
            ("openai", format!("{}/v1", self.openai.url())),
            ("anthropic", self.anthropic.url()),
            ("amazon-bedrock", format!("{}/{{region}}", self.bedrock.url())),
            ("azure", format!("{}/r/{{resource}}", self.azure.url())),
            ("google-ai-studio", self.gemini.url()),
        ]
    }

    pub fn describe(&self) -> Value {
        let mut out = Map::new();
        for (name, s) in [("openai", &self.openai), ("anthropic", &self.anthropic), ("bedrock", &self.bedrock), ("azure", &self.azure), ("gemini", &self.gemini)] {
            out.insert(name.into(), Value::String(s.url()));
        }
        let urls: Map<String, Value> = self.base_urls().into_iter().map(|(k, v)| (k.to_owned(), Value::String(v))).collect();
        out.insert("base_urls".into(), Value::Object(urls));
        out.insert("bedrock_iam".into(), json!({"accessKeyId": BEDROCK_ACCESS_KEY_ID, "secretAccessKey": BEDROCK_SECRET_ACCESS_KEY}));
        Value::Object(out)
    }
}

pub async fn run() -> anyhow::Result<()> {
    let fakes = Fakes::start().await?;
    println!("{}", fakes.describe());
    // The harness reads one line; flush so it isn't stuck behind a pipe buffer.
    use std::io::Write;
    std::io::stdout().flush()?;
    crate::shutdown_signal().await;
    drop(fakes);
    Ok(())
}

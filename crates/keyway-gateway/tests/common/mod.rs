//! Starts the real gateway router on an ephemeral port against fake upstreams.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(dead_code)]

use keyway_gateway::config::SystemCredentialConfig;
use keyway_gateway::{AppState, Config, SharedState};
use serde_json::{json, Value};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

pub const MGMT: &str = "kw-mgmt-test-bootstrap-key-0123456789abcdef";

/// Every log line any test in this binary wrote (searched for leaked secrets).
pub fn logs() -> String {
    String::from_utf8_lossy(&log_buffer().lock().unwrap()).into_owned()
}

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUF: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUF.get_or_init(|| Arc::new(Mutex::new(Vec::new())))
}

struct BufWriter(Arc<Mutex<Vec<u8>>>);
impl Write for BufWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn init_logs() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let buf = log_buffer().clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug,sqlx=warn,hyper=info,reqwest=info,h2=info"))
            .with_writer(move || BufWriter(buf.clone()))
            .with_ansi(false)
            .try_init();
    });
}

pub struct Gateway {
    pub addr: SocketAddr,
    pub state: SharedState,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A config whose data dir is fresh and whose bootstrap management key is [`MGMT`].
pub fn config(dir: &std::path::Path) -> Config {
    Config {
        data_dir: dir.to_path_buf(),
        bootstrap_management_key: Some(MGMT.into()),
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    }
}

pub fn system_key(provider: &str, key: &str) -> SystemCredentialConfig {
    SystemCredentialConfig { provider: provider.into(), key: key.into(), name: None, zdr: false }
}

impl Gateway {
    pub async fn start(mut tweak: impl FnMut(&mut Config)) -> Gateway {
        init_logs();
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        tweak(&mut cfg);
        Self::start_with(cfg, dir).await
    }

    pub async fn start_with(cfg: Config, dir: tempfile::TempDir) -> Gateway {
        init_logs();
        let (state, _boot) = AppState::build(cfg).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let st = state.clone();
        let task = tokio::spawn(async move {
            let _ = keyway_gateway::serve(listener, st, std::future::pending()).await;
        });
        Gateway { addr, state, http: reqwest::Client::new(), dir, task }
    }

    /// A gateway in front of a Bedrock fake (its base URL carries the `{region}` template).
    pub async fn for_bedrock(fake: &keyway_fakes::FakeServer) -> Gateway {
        let base = format!("{}/{{region}}", fake.url());
        Gateway::start(|c| {
            c.providers.insert("amazon-bedrock".into(), keyway_gateway::config::ProviderSettings { base_url: Some(base.clone()) });
        })
        .await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn req(&self, method: &str, path: &str, key: Option<&str>, body: Option<Value>) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut r = self.http.request(method.parse().unwrap(), self.url(path));
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, v, headers)
    }

    pub async fn mgmt(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let (s, v, _) = self.req(method, path, Some(MGMT), body).await;
        (s, v)
    }

    /// A new inference key in the default workspace.
    pub async fn inference_key(&self) -> (String, String) {
        let (s, v) = self.mgmt("POST", "/api/v1/keys", Some(json!({"name": "test"}))).await;
        assert_eq!(s, 201, "{v}");
        (v["key"].as_str().unwrap().to_owned(), v["data"]["hash"].as_str().unwrap().to_owned())
    }

    pub async fn add_byok(&self, body: Value) -> String {
        let (s, v) = self.mgmt("POST", "/api/v1/byok", Some(body)).await;
        assert_eq!(s, 201, "{v}");
        v["data"]["id"].as_str().unwrap().to_owned()
    }
}

/// Asserts an OpenAI-shaped (or OpenRouter-shaped) error with this status.
pub fn assert_error(status: u16, body: &Value, want: u16) {
    assert_eq!(status, want, "unexpected status; body {body}");
    let msg = body["error"]["message"].as_str().unwrap_or("");
    assert!(!msg.is_empty(), "error has no message: {body}");
}

/// Keyway in front of the OpenAI fake (as `openai`) with a system credential `system_key` for it,
/// and a fresh inference key.
pub async fn openai_gateway(options: keyway_fakes::server::FakeOptions, system: &str) -> (keyway_fakes::FakeServer, Gateway, String) {
    let fake = keyway_fakes::openai::start(options).await.unwrap();
    let base = format!("{}/v1", fake.url());
    let system = system.to_owned();
    let g = Gateway::start(|c| {
        c.providers.insert("openai".into(), keyway_gateway::config::ProviderSettings { base_url: Some(base.clone()) });
        c.system_credentials.push(system_key("openai", &system));
    })
    .await;
    let (key, _) = g.inference_key().await;
    (fake, g, key)
}

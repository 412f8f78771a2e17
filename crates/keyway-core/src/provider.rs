//! Provider slugs (the names users and OpenRouter's API know them by) and the wire protocol each speaks.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A provider Keyway can reach. The string form is OpenRouter's slug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ProviderSlug {
    OpenAi,
    Anthropic,
    Azure,
    AmazonBedrock,
    GoogleVertex,
    GoogleAiStudio,
    Mistral,
    DeepSeek,
    XAi,
    ZAi,
    Groq,
    DeepInfra,
    Perplexity,
    MoonshotAi,
    Baseten,
    Fireworks,
    Together,
}

/// The wire protocol an adapter speaks; several providers share the OpenAI-compatible one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    OpenAiCompat,
    Anthropic,
    Azure,
    Bedrock,
    Vertex,
    Gemini,
}

impl ProviderSlug {
    pub const ALL: [ProviderSlug; 17] = [
        Self::OpenAi,
        Self::Anthropic,
        Self::Azure,
        Self::AmazonBedrock,
        Self::GoogleVertex,
        Self::GoogleAiStudio,
        Self::Mistral,
        Self::DeepSeek,
        Self::XAi,
        Self::ZAi,
        Self::Groq,
        Self::DeepInfra,
        Self::Perplexity,
        Self::MoonshotAi,
        Self::Baseten,
        Self::Fireworks,
        Self::Together,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
            Self::Azure => "azure",
            Self::AmazonBedrock => "amazon-bedrock",
            Self::GoogleVertex => "google-vertex",
            Self::GoogleAiStudio => "google-ai-studio",
            Self::Mistral => "mistral",
            Self::DeepSeek => "deepseek",
            Self::XAi => "xai",
            Self::ZAi => "z-ai",
            Self::Groq => "groq",
            Self::DeepInfra => "deepinfra",
            Self::Perplexity => "perplexity",
            Self::MoonshotAi => "moonshotai",
            Self::Baseten => "baseten",
            Self::Fireworks => "fireworks",
            Self::Together => "together",
        }
    }

    /// Display name as OpenRouter shows it in `provider` fields.
    pub const fn display_name(self) -> &'static str {
        match self {
            Self::OpenAi => "OpenAI",
            Self::Anthropic => "Anthropic",
            Self::Azure => "Azure",
            Self::AmazonBedrock => "Amazon Bedrock",
            Self::GoogleVertex => "Google Vertex",
            Self::GoogleAiStudio => "Google AI Studio",
            Self::Mistral => "Mistral",
            Self::DeepSeek => "DeepSeek",
            Self::XAi => "xAI",
            Self::ZAi => "Z.AI",
            Self::Groq => "Groq",
            Self::DeepInfra => "DeepInfra",
            Self::Perplexity => "Perplexity",
            Self::MoonshotAi => "Moonshot AI",
            Self::Baseten => "Baseten",
            Self::Fireworks => "Fireworks",
            Self::Together => "Together",
        }
    }

    pub const fn protocol(self) -> Protocol {
        match self {
            Self::Anthropic => Protocol::Anthropic,
            Self::Azure => Protocol::Azure,
            Self::AmazonBedrock => Protocol::Bedrock,
            Self::GoogleVertex => Protocol::Vertex,
            Self::GoogleAiStudio => Protocol::Gemini,
            _ => Protocol::OpenAiCompat,
        }
    }

    /// The public base URL; `{region}` / `{location}` are filled per request.
    pub const fn default_base_url(self) -> &'static str {
        match self {
            Self::OpenAi => "https://api.openai.com/v1",
            Self::Anthropic => "https://api.anthropic.com",
            Self::Azure => "https://{resource}.openai.azure.com",
            Self::AmazonBedrock => "https://bedrock-runtime.{region}.amazonaws.com",
            Self::GoogleVertex => "https://{location}-aiplatform.googleapis.com",
            Self::GoogleAiStudio => "https://generativelanguage.googleapis.com",
            Self::Mistral => "https://api.mistral.ai/v1",
            Self::DeepSeek => "https://api.deepseek.com/v1",
            Self::XAi => "https://api.x.ai/v1",
            Self::ZAi => "https://api.z.ai/api/paas/v4",
            Self::Groq => "https://api.groq.com/openai/v1",
            Self::DeepInfra => "https://api.deepinfra.com/v1/openai",
            Self::Perplexity => "https://api.perplexity.ai",
            Self::MoonshotAi => "https://api.moonshot.ai/v1",
            Self::Baseten => "https://inference.baseten.co/v1",
            Self::Fireworks => "https://api.fireworks.ai/inference/v1",
            Self::Together => "https://api.together.xyz/v1",
        }
    }

    /// Accepts the slug and the short aliases Vercel's `providerOptions.gateway.byok` uses.
    pub fn parse_alias(s: &str) -> Option<Self> {
        match s {
            "bedrock" => Some(Self::AmazonBedrock),
            "vertex" => Some(Self::GoogleVertex),
            "google" | "gemini" => Some(Self::GoogleAiStudio),
            other => other.parse().ok(),
        }
    }
}

impl ProviderSlug {
    /// A provider as people name it: the slug, the display name or a common alias, in any case and
    /// spacing (`amazon-bedrock`, `Amazon Bedrock`, `AWS Bedrock`, `xAI`, `Grok`, `zAI`, `Google
    /// Vertex`). Management API, CLI and routing options all read names through this.
    pub fn parse_name(name: &str) -> Option<Self> {
        let lower = name.trim().to_ascii_lowercase();
        if let Some(p) = Self::parse_alias(&lower) {
            return Some(p);
        }
        let key: String = lower.chars().filter(char::is_ascii_alphanumeric).collect();
        let squash = |s: &str| -> String { s.chars().filter(char::is_ascii_alphanumeric).collect::<String>().to_ascii_lowercase() };
        ALIASES
            .iter()
            .find(|(alias, _)| *alias == key)
            .map(|(_, p)| *p)
            .or_else(|| Self::ALL.into_iter().find(|p| squash(p.as_str()) == key || squash(p.display_name()) == key))
    }

    /// What [`Self::parse_name`] accepts, for error messages: each slug with its display name.
    pub fn accepted_names() -> String {
        let mut out: Vec<String> = Self::ALL.iter().map(|p| format!("{} ({})", p.as_str(), p.display_name())).collect();
        out.push("aliases: bedrock, aws bedrock, vertex, vertex ai, gemini, google, azure openai, grok, zai, moonshot, together ai, fireworks ai, mistral ai".to_owned());
        out.join(", ")
    }
}

/// Other names in use (letters and digits only, lower case) -> the provider.
const ALIASES: &[(&str, ProviderSlug)] = &[
    ("azureopenai", ProviderSlug::Azure),
    ("azureaifoundry", ProviderSlug::Azure),
    ("microsoftazure", ProviderSlug::Azure),
    ("bedrock", ProviderSlug::AmazonBedrock),
    ("awsbedrock", ProviderSlug::AmazonBedrock),
    ("aws", ProviderSlug::AmazonBedrock),
    ("amazon", ProviderSlug::AmazonBedrock),
    ("vertex", ProviderSlug::GoogleVertex),
    ("vertexai", ProviderSlug::GoogleVertex),
    ("googlevertexai", ProviderSlug::GoogleVertex),
    ("googlecloudvertexai", ProviderSlug::GoogleVertex),
    ("gemini", ProviderSlug::GoogleAiStudio),
    ("google", ProviderSlug::GoogleAiStudio),
    ("googleaistudio", ProviderSlug::GoogleAiStudio),
    ("googlegemini", ProviderSlug::GoogleAiStudio),
    ("mistralai", ProviderSlug::Mistral),
    ("grok", ProviderSlug::XAi),
    ("xai", ProviderSlug::XAi),
    ("zai", ProviderSlug::ZAi),
    ("zhipu", ProviderSlug::ZAi),
    ("zhipuai", ProviderSlug::ZAi),
    ("moonshot", ProviderSlug::MoonshotAi),
    ("kimi", ProviderSlug::MoonshotAi),
    ("togetherai", ProviderSlug::Together),
    ("fireworksai", ProviderSlug::Fireworks),
];

impl fmt::Display for ProviderSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown provider `{0}`")]
pub struct UnknownProvider(pub String);

impl FromStr for ProviderSlug {
    type Err = UnknownProvider;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownProvider(s.to_owned()))
    }
}

impl TryFrom<String> for ProviderSlug {
    type Error = UnknownProvider;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ProviderSlug> for String {
    fn from(p: ProviderSlug) -> String {
        p.as_str().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_round_trip() {
        for p in ProviderSlug::ALL {
            assert_eq!(p.as_str().parse::<ProviderSlug>(), Ok(p));
        }
        assert!("nope".parse::<ProviderSlug>().is_err());
        assert_eq!(ProviderSlug::parse_alias("bedrock"), Some(ProviderSlug::AmazonBedrock));
    }

    #[test]
    fn names_people_type_parse_to_the_slug() {
        let cases = [
            ("xAI", ProviderSlug::XAi), ("Grok", ProviderSlug::XAi), ("XAI", ProviderSlug::XAi),
            ("zAI", ProviderSlug::ZAi), ("Z.AI", ProviderSlug::ZAi), ("z-ai", ProviderSlug::ZAi),
            ("Azure", ProviderSlug::Azure), ("Azure OpenAI", ProviderSlug::Azure),
            ("AWS Bedrock", ProviderSlug::AmazonBedrock), ("Amazon Bedrock", ProviderSlug::AmazonBedrock),
            ("amazon-bedrock", ProviderSlug::AmazonBedrock), ("Bedrock", ProviderSlug::AmazonBedrock),
            ("Google Vertex", ProviderSlug::GoogleVertex), ("Vertex AI", ProviderSlug::GoogleVertex),
            ("Google AI Studio", ProviderSlug::GoogleAiStudio), ("Gemini", ProviderSlug::GoogleAiStudio),
            ("OpenAI", ProviderSlug::OpenAi), (" openai ", ProviderSlug::OpenAi), ("Moonshot AI", ProviderSlug::MoonshotAi),
            ("Together AI", ProviderSlug::Together), ("DeepInfra", ProviderSlug::DeepInfra), ("Mistral AI", ProviderSlug::Mistral),
        ];
        for (name, want) in cases {
            assert_eq!(ProviderSlug::parse_name(name), Some(want), "{name}");
        }
        for p in ProviderSlug::ALL {
            assert_eq!(ProviderSlug::parse_name(p.as_str()), Some(p));
            assert_eq!(ProviderSlug::parse_name(p.display_name()), Some(p));
        }
        assert_eq!(ProviderSlug::parse_name("nope"), None);
        assert_eq!(ProviderSlug::parse_name(""), None);
        assert!(ProviderSlug::accepted_names().contains("xai (xAI)"));
    }
}

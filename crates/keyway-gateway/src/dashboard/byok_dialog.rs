//! The add/edit dialog for a provider key (one form per credential shape, shown by provider) and
//! the Test key result modal. `assets/app.js` fills, checks and submits them.

use maud::{html, Markup};

const BEDROCK_REGIONS: &[&str] = &[
    "global", "us-east-1", "us-east-2", "us-west-2", "ca-central-1", "eu-central-1", "eu-west-1", "eu-west-2", "eu-west-3", "eu-north-1",
    "ap-northeast-1", "ap-northeast-2", "ap-south-1", "ap-southeast-1", "ap-southeast-2", "sa-east-1",
];

pub fn dialog(can_global: bool) -> Markup {
    html! {
        dialog #key-dialog aria-labelledby="key-dialog-title" {
            form #key-form method="dialog" novalidate {
                div.dialog-head {
                    h2 #key-dialog-title { "Add key" }
                    button.btn.ghost.icon type="button" data-action="close" aria-label="Close" { "✕" }
                }
                div.dialog-body {
                    input type="hidden" name="id";
                    input type="hidden" name="provider";
                    div.field {
                        label for="f-name" { "Name" }
                        input #f-name name="name" type="text" required maxlength="200" autocomplete="off" placeholder="e.g. Production OpenAI";
                    }
                    p.hint #keep-hint hidden { "Leave the secret fields empty to keep the stored secret." }

                    div.form-kind data-kind="api_key" hidden {
                        div.field {
                            label for="f-key" { "API key" }
                            input #f-key name="key" type="password" autocomplete="off" spellcheck="false";
                        }
                    }

                    fieldset.form-kind data-kind="azure" hidden {
                        legend { "Deployments" }
                        p.hint { "One row per deployment: the gateway model slug it serves, its full endpoint URL, its key and the model id (deployment name)." }
                        div.rows #azure-rows {}
                        button.btn.small type="button" data-action="add-row" data-rows="azure" { "Add deployment" }
                    }

                    fieldset.form-kind data-kind="bedrock" hidden {
                        legend { "Bedrock credentials" }
                        div.radio-row role="radiogroup" aria-label="Bedrock credential type" {
                            label.check { input type="radio" name="bedrock_mode" value="iam" checked; span { "Access keys per region" } }
                            label.check { input type="radio" name="bedrock_mode" value="api_key"; span { "Bedrock API key" } }
                        }
                        div #bedrock-iam {
                            p.hint { "One row per region (or " code { "global" } " for every region)." }
                            div.rows #bedrock-rows {}
                            button.btn.small type="button" data-action="add-row" data-rows="bedrock" { "Add region" }
                        }
                        div #bedrock-apikey hidden {
                            div.field {
                                label for="f-bedrock-key" { "Bedrock API key" }
                                input #f-bedrock-key name="bedrock_key" type="password" autocomplete="off" spellcheck="false";
                            }
                            div.field {
                                label for="f-bedrock-region" { "Region (optional)" }
                                input #f-bedrock-region name="bedrock_region" type="text" list="bedrock-regions" autocomplete="off";
                            }
                        }
                        datalist #bedrock-regions { @for r in BEDROCK_REGIONS { option value=(r) {} } }
                    }

                    div.form-kind data-kind="vertex" hidden {
                        div.field {
                            label for="f-vertex" { "Service account JSON" }
                            textarea #f-vertex name="vertex_json" rows="7" spellcheck="false" autocomplete="off"
                                aria-describedby="vertex-check" placeholder="{\"type\": \"service_account\", \"project_id\": …}" {}
                            p.hint #vertex-check aria-live="polite" { "Paste the key file downloaded from Google Cloud (IAM → Service accounts → Keys)." }
                        }
                        div.field {
                            label for="f-vertex-location" { "Location" }
                            input #f-vertex-location name="vertex_location" type="text" value="global" autocomplete="off";
                        }
                    }

                    div.grid2 {
                        fieldset {
                            legend { "Section" }
                            label.check { input type="radio" name="section" value="prioritized" checked; span { "Prioritized" } }
                            label.check { input type="radio" name="section" value="fallback"; span { "Fallback" } }
                        }
                        fieldset {
                            legend { "Options" }
                            label.check { input type="checkbox" name="enabled" checked; span { "Enabled" } }
                            label.check { input type="checkbox" name="always_use"; span { "Always use this key" } }
                            @if can_global {
                                label.check #global-wrap { input type="checkbox" name="global"; span { "Global (every workspace)" } }
                            }
                        }
                    }
                    div.field {
                        label for="f-models" { "Allowed models" }
                        input #f-models name="allowed_models" type="text" autocomplete="off" placeholder="all models" aria-describedby="f-models-hint";
                        p.hint #f-models-hint { "Comma-separated model slugs such as openai/gpt-4o-mini; empty for every model." }
                    }
                    fieldset {
                        legend { "Assigned to" }
                        label.check { input type="radio" name="assign" value="org" checked; span { "Organization (all API keys)" } }
                        label.check { input type="radio" name="assign" value="keys"; span { "Only these API keys:" } }
                        div.key-picks #key-picks {}
                    }
                    div.alert.error #key-error role="alert" hidden {}
                }
                div.dialog-foot {
                    span.test-result #dialog-test-result {}
                    button.btn type="button" data-action="test-unsaved" { "Test key" }
                    button.btn.ghost type="button" data-action="close" { "Cancel" }
                    button.btn.primary type="submit" { "Save" }
                }
            }
        }
        template #azure-row {
            div.row-set.azure-row {
                div.field { label { "Model slug" input type="text" name="model_slug" placeholder="openai/gpt-4o" autocomplete="off"; } }
                div.field.wide { label { "Endpoint URL" input type="url" name="endpoint_url" placeholder="https://NAME.openai.azure.com/openai/deployments/…" autocomplete="off"; } }
                div.field { label { "API key" input type="password" name="api_key" autocomplete="off"; } }
                div.field { label { "Model id" input type="text" name="model_id" placeholder="gpt-4o" autocomplete="off"; } }
                button.btn.small.ghost.remove type="button" data-action="remove-row" aria-label="Remove this deployment" { "Remove" }
            }
        }
        template #bedrock-row {
            div.row-set.bedrock-row {
                div.field { label { "Region" input type="text" name="region" list="bedrock-regions" placeholder="us-east-1 or global" autocomplete="off"; } }
                div.field { label { "Access key ID" input type="text" name="access_key_id" autocomplete="off" spellcheck="false"; } }
                div.field.wide { label { "Secret access key" input type="password" name="secret_access_key" autocomplete="off"; } }
                button.btn.small.ghost.remove type="button" data-action="remove-row" aria-label="Remove this region" { "Remove" }
            }
        }
    }
}

/// What Test key sent and got back.
pub fn test_modal() -> Markup {
    html! {
        dialog #test-dialog aria-labelledby="test-dialog-title" {
            div.dialog-head {
                h2 #test-dialog-title { "Test key result" }
                button.btn.ghost.icon type="button" data-action="close" aria-label="Close" { "✕" }
            }
            div.dialog-body {
                p #test-summary {}
                h3 { "Request sent" }
                pre #test-request tabindex="0" {}
                h3 { "Response" }
                pre #test-response tabindex="0" {}
            }
            div.dialog-foot { button.btn type="button" data-action="close" { "Close" } }
        }
    }
}

//! The `payledger` command line.

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "payledger",
    version,
    about = "An event-sourced payment ledger for membership plans"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Migrate the database, then serve the HTTP API (the default when no command is given).
    Serve,
    /// Apply the database migrations and exit.
    Migrate {
        /// PostgreSQL: print the GRANTs that give the application role (--app-role) exactly
        /// what the server needs.
        #[arg(long, conflicts_with = "apply_grants")]
        print_grants: bool,
        /// PostgreSQL: run those GRANTs (as the owner role that ran the migrations).
        #[arg(long)]
        apply_grants: bool,
        /// The role the server runs as.
        #[arg(long, env = "PAYLEDGER_APP_ROLE")]
        app_role: Option<String>,
    },
    /// Print a bearer token signed with the configured secret.
    Token {
        /// The user id the token speaks for (its `sub`).
        #[arg(long)]
        user: String,
        /// Make it an admin token.
        #[arg(long)]
        admin: bool,
        /// How long the token is valid: 90s, 15m, 1h, 7d.
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
    /// Tools for webhooks.
    Webhook {
        #[command(subcommand)]
        command: WebhookCommand,
    },
    /// Run the Ping++-compatible sandbox gateway on its own.
    Sandbox {
        /// Where the sandbox listens; its API is under /sandbox/v1.
        #[arg(long, default_value = "127.0.0.1:8090")]
        addr: std::net::SocketAddr,
        /// Where it delivers signed webhooks.
        #[arg(long, default_value = "http://127.0.0.1:8080/v1/webhooks/pingpp")]
        webhook_url: String,
        /// PEM private key that signs webhooks (default: SANDBOX_PRIVATE_KEY_PATH, else a fresh key).
        #[arg(long, env = "SANDBOX_PRIVATE_KEY_PATH")]
        private_key: Option<std::path::PathBuf>,
        /// The bearer key its own API requires (default: PINGPP_API_KEY, else a fresh key for
        /// this run, printed).
        #[arg(long, env = "PINGPP_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
    },
    /// Rebuild every view from the event log and compare with the live views (exit 0 only
    /// when equal), or with --as-of, rebuild the state at that instant and print it.
    Replay {
        /// An RFC 3339 instant, e.g. 2026-11-25T12:00:00Z.
        #[arg(long)]
        as_of: Option<String>,
    },
    /// Walk the whole log and check the hash chain, positions, streams, the gateway inbox
    /// and the evidence of every gateway money event: exit 0 when intact, 1 listing each problem with its position, 2 on bad input.
    /// Prints the head (position and hash).
    Verify {
        /// A head saved earlier (the JSON of `GET /v1/audit/head`): the log must still hold
        /// that hash at that position.
        #[arg(long)]
        anchor: Option<std::path::PathBuf>,
        /// The public half of the audit key (`PAYLEDGER_AUDIT_KEY_PATH`): the anchor must be
        /// signed by it.
        #[arg(long, requires = "anchor")]
        audit_key: Option<std::path::PathBuf>,
        /// A gateway public key to verify kept webhooks with (PEM, certificate or bare
        /// base64); repeat for each. The keys named by PINGPP_PUBLIC_KEY_PATH,
        /// ALIPAY_PUBLIC_KEY_PATH and WECHATPAY_PLATFORM_PUBLIC_KEY_PATH are used too.
        #[arg(long = "gateway-key")]
        gateway_keys: Vec<std::path::PathBuf>,
    },
    /// Write the transaction history (payments and refunds) as it stood at an instant, in
    /// position order, ending with the head position and hash it was built from.
    Export {
        /// An RFC 3339 instant: events recorded later are left out.
        #[arg(long)]
        as_of: String,
        /// Only entries recorded at or after this RFC 3339 instant.
        #[arg(long)]
        from: Option<String>,
        /// Only entries recorded at or before this RFC 3339 instant.
        #[arg(long)]
        to: Option<String>,
        #[arg(long, value_parser = ["csv", "json"], default_value = "csv")]
        format: String,
    },
    /// Run one reconciliation pass against the configured database and gateway, print what it
    /// did (payments confirmed, orders expired, unmatched gateway events) and exit.
    Reconcile,
}

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Check whether a captured webhook's signature is genuine: exit 0 when it is, 1 when it
    /// is not, 2 on bad input. The body is read from --body or standard input, byte for byte.
    Verify {
        /// Who signed it: a gateway, or `payledger` for a delivery this ledger sent to the
        /// merchant.
        #[arg(long, value_parser = ["pingpp", "alipay", "wechatpay", "payledger"])]
        provider: String,
        /// The gateway's public key: PEM, a certificate, or Alipay's bare base64 key.
        #[arg(long, required_if_eq_any([
            ("provider", "pingpp"), ("provider", "alipay"), ("provider", "wechatpay")
        ]))]
        public_key: Option<std::path::PathBuf>,
        /// payledger only: the endpoint's secret (default: PAYLEDGER_MERCHANT_WEBHOOK_SECRET).
        #[arg(
            long,
            env = "PAYLEDGER_MERCHANT_WEBHOOK_SECRET",
            hide_env_values = true,
            required_if_eq("provider", "payledger")
        )]
        secret: Option<String>,
        /// Ping++ only: the signature header's value (base64).
        #[arg(long, required_if_eq("provider", "pingpp"))]
        signature: Option<String>,
        /// WeChat Pay and payledger: a captured header, `Name: value` (repeat for each
        /// Wechatpay-*; payledger needs its Payledger-Signature).
        #[arg(long = "header")]
        headers: Vec<String>,
        /// WeChat Pay and payledger: judge the timestamp as of this time (unix seconds;
        /// default now).
        #[arg(long)]
        at: Option<i64>,
        /// A file holding the exact body (default: standard input). For Alipay, the
        /// form-encoded notification.
        #[arg(long)]
        body: Option<std::path::PathBuf>,
    },
}

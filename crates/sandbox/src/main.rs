//! `cargo run -p inbox-sandbox -- [OPTIONS]`: starts the sandbox and prints one base URL
//! per marketplace, with the credentials it accepts (`--help` lists the options).

use std::time::Duration;

use clap::Parser;
use inbox_sandbox::{Config, Sandbox, Vendor};

/// A local sandbox of the Allegro, Mercado Libre, Magalu and Ozon messaging APIs.
#[derive(Parser, Debug)]
#[command(name = "inbox-sandbox", version)]
struct Args {
    /// Port to listen on, on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Generated conversations per marketplace, besides the vendors' own examples.
    #[arg(long, value_name = "N")]
    conversations: Option<u64>,
    /// Messages in each generated conversation.
    #[arg(long, value_name = "N")]
    messages: Option<u64>,
    /// The most items any page holds, whatever the client asks for.
    #[arg(long, value_name = "N")]
    page_cap: Option<u64>,
    /// Added to every answer, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    latency_ms: u64,
    /// Share of requests answered 429 with the vendor's body and `Retry-After` (0 to 1).
    #[arg(long, value_name = "SHARE", value_parser = share)]
    rate_429: Option<f64>,
    /// Share of requests answered 500 (0 to 1).
    #[arg(long, value_name = "SHARE", value_parser = share)]
    rate_500: Option<f64>,
    /// Share of requests answered only after `--slow-ms` (0 to 1).
    #[arg(long, value_name = "SHARE", value_parser = share)]
    rate_slow: Option<f64>,
    /// How long a slow answer takes, in milliseconds.
    #[arg(long, value_name = "MS")]
    slow_ms: Option<u64>,
    /// Answer Allegro's beta.v1 media type with 406, as before the beta existed.
    #[arg(long)]
    no_allegro_beta: bool,
    /// Write the sandbox's accounts, base URLs included, to FILE as an `inbox --config`
    /// file.
    #[arg(long, value_name = "FILE")]
    write_config: Option<std::path::PathBuf>,
    /// Accounts per marketplace, each with its own credentials and data (named
    /// `allegro`, `allegro-2`, … in the `--write-config` file).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=inbox_sandbox::MAX_ACCOUNTS))]
    accounts: u64,
    /// Every Kth account is written with OAuth credentials (a single-use refresh token)
    /// rather than a token; 0 for none.
    #[arg(long, value_name = "K", default_value_t = 0)]
    oauth_every: u64,
    /// How long an access token from the token endpoints lives, in seconds.
    #[arg(long, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    token_ttl: Option<u64>,
    /// Give consent on the authorize endpoints without showing the consent page (for
    /// scripts connecting accounts).
    #[arg(long)]
    auto_consent: bool,
    /// POST Mercado Libre's and Ozon's push notifications to BASE/mercadolibre and
    /// BASE/ozon when a buyer writes or reads (Ozon's TYPE_PING at start).
    #[arg(long, value_name = "BASE")]
    push_url: Option<String>,
    /// How long an undelivered notification is tried again, in seconds (the vendors: an
    /// hour); then Mercado Libre lists it in GET /missed_feeds.
    #[arg(long, value_name = "SECS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    push_retry_secs: u64,
    /// Do not enforce the vendors' published rate limits (per account, and Allegro's per
    /// application) with 429.
    #[arg(long)]
    no_limits: bool,
}

/// A share of requests: a number from 0 to 1.
fn share(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{text:?}: a share is from 0 to 1"))
    }
}

impl Args {
    fn config(&self) -> Config {
        let mut config = Config::default();
        config.listen.set_port(self.port);
        if let Some(n) = self.conversations {
            config.conversations = n;
        }
        if let Some(n) = self.messages {
            config.messages_per_conversation = n;
        }
        config.page_cap = self.page_cap.or(config.page_cap);
        config.allegro_beta = !self.no_allegro_beta;
        config.accounts = self.accounts;
        config.oauth_every = self.oauth_every;
        config.oauth.auto_consent = self.auto_consent;
        if let Some(secs) = self.token_ttl {
            config.oauth.access_ttl = Duration::from_secs(secs);
        }
        config.push_url = self.push_url.clone();
        config.push_retry_for = Duration::from_secs(self.push_retry_secs);
        if !self.no_limits {
            config.limits = inbox_sandbox::Limit::published();
        }
        let faults = &mut config.faults;
        faults.latency = Duration::from_millis(self.latency_ms);
        faults.rate_429 = self.rate_429.unwrap_or(faults.rate_429);
        faults.rate_500 = self.rate_500.unwrap_or(faults.rate_500);
        faults.rate_slow = self.rate_slow.unwrap_or(faults.rate_slow);
        if let Some(ms) = self.slow_ms {
            faults.slow_delay = Duration::from_millis(ms);
        }
        config
    }
}

/// The variables `inbox` reads, as `export` lines a shell can `eval` (the first
/// account's credentials; every value single-quoted).
fn environment(sandbox: &Sandbox) -> Vec<String> {
    let c = sandbox.credentials();
    let pairs = [
        ("INBOX_ALLEGRO_URL", sandbox.url(Vendor::Allegro)),
        ("INBOX_MERCADOLIBRE_URL", sandbox.url(Vendor::MercadoLibre)),
        ("INBOX_MAGALU_URL", sandbox.url(Vendor::Magalu)),
        ("INBOX_OZON_URL", sandbox.url(Vendor::Ozon)),
        // Where sellers authorise the app, and the app itself (one for every marketplace).
        ("INBOX_ALLEGRO_AUTH_URL", sandbox.url(Vendor::Allegro)),
        (
            "INBOX_MERCADOLIBRE_AUTH_URL",
            sandbox.url(Vendor::MercadoLibre),
        ),
        ("INBOX_MAGALU_AUTH_URL", sandbox.url(Vendor::Magalu)),
        ("INBOX_OZON_AUTH_URL", sandbox.url(Vendor::Ozon)),
        ("ALLEGRO_CLIENT_ID", sandbox.oauth().client_id.clone()),
        (
            "ALLEGRO_CLIENT_SECRET",
            sandbox.oauth().client_secret.clone(),
        ),
        ("MERCADOLIBRE_CLIENT_ID", sandbox.oauth().client_id.clone()),
        (
            "MERCADOLIBRE_CLIENT_SECRET",
            sandbox.oauth().client_secret.clone(),
        ),
        ("MAGALU_CLIENT_ID", sandbox.oauth().client_id.clone()),
        (
            "MAGALU_CLIENT_SECRET",
            sandbox.oauth().client_secret.clone(),
        ),
        ("ALLEGRO_TOKEN", c.allegro_token.clone()),
        ("MERCADOLIBRE_TOKEN", c.mercadolibre_token.clone()),
        ("MERCADOLIBRE_SELLER_ID", c.mercadolibre_seller_id.clone()),
        (
            "MERCADOLIBRE_APPLICATION_ID",
            c.mercadolibre_application_id.clone(),
        ),
        ("MAGALU_TOKEN", c.magalu_token.clone()),
        ("MAGALU_OWNER_NAME", "Sandbox Attendant".to_string()),
        ("MAGALU_OWNER_ID", "sandbox-attendant".to_string()),
        ("OZON_CLIENT_ID", c.ozon_client_id.clone()),
        ("OZON_API_KEY", c.ozon_api_key.clone()),
    ];
    pairs
        .iter()
        .map(|(k, v)| format!("export {k}='{}'", v.replace('\'', "'\\''")))
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let config = args.config();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let sandbox = Sandbox::start(config).await?;
        if let Some(path) = &args.write_config {
            let text = serde_json::to_string_pretty(&sandbox.accounts_config())?;
            std::fs::write(path, text + "\n")
                .map_err(|e| format!("writing {}: {e}", path.display()))?;
            println!("# accounts written to {}", path.display());
        }
        for line in environment(&sandbox) {
            println!("{line}");
        }
        println!(
            "# control: POST http://{}/_sandbox/messages {{\"marketplace\", \"conversation\", \"text\", \"visible_after_secs\"}}; GET http://{}/_sandbox/requests; GET http://{}/_sandbox/stats",
            sandbox.addr(),
            sandbox.addr(),
            sandbox.addr()
        );
        if args.accounts > 1 {
            println!(
                "# {} accounts per marketplace; the credentials above are the first's, --write-config writes them all",
                args.accounts
            );
        }
        println!("# (Ctrl-C stops it)");
        tokio::signal::ctrl_c().await?;
        drop(sandbox);
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The printed environment is `export` lines a shell can `eval`, Magalu's attendant
    /// (which replies there need) included.
    #[test]
    fn the_environment_is_export_ready() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let sandbox = runtime.block_on(Sandbox::start(Config::default())).unwrap();
        let lines = environment(&sandbox);
        assert!(lines
            .iter()
            .all(|l| l.starts_with("export ") && l.ends_with('\'')));
        assert!(lines.contains(&"export MAGALU_OWNER_NAME='Sandbox Attendant'".to_string()));
        assert!(lines.contains(&"export MAGALU_OWNER_ID='sandbox-attendant'".to_string()));
        let script = format!(
            "{}\nprintf '%s|%s' \"$MAGALU_OWNER_NAME\" \"$OZON_API_KEY\"",
            lines.join("\n")
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "Sandbox Attendant|sandbox-ozon-api-key"
        );
    }

    #[test]
    fn options_are_typed_and_checked() {
        let args = Args::try_parse_from([
            "inbox-sandbox",
            "--port",
            "0",
            "--conversations",
            "3",
            "--rate-429",
            "0.25",
            "--latency-ms",
            "5",
            "--no-allegro-beta",
            "--accounts",
            "250",
            "--oauth-every",
            "4",
            "--token-ttl",
            "2",
        ])
        .unwrap();
        let config = args.config();
        assert_eq!(config.listen.port(), 0);
        assert_eq!(config.conversations, 3);
        assert_eq!(config.faults.rate_429, 0.25);
        assert_eq!(config.faults.latency, Duration::from_millis(5));
        assert!(!config.allegro_beta);
        assert_eq!((config.accounts, config.oauth_every), (250, 4));
        assert_eq!(config.oauth.access_ttl, Duration::from_secs(2));
        assert_eq!(config.limits, inbox_sandbox::Limit::published());
        let defaults = Args::try_parse_from(["inbox-sandbox"]).unwrap().config();
        assert_eq!(defaults.listen.port(), 8080);
        assert_eq!(defaults.conversations, Config::default().conversations);
        assert_eq!((defaults.accounts, defaults.oauth_every), (1, 0));
        let unlimited = Args::try_parse_from(["inbox-sandbox", "--no-limits"]).unwrap();
        assert!(unlimited.config().limits.is_empty());
        for bad in [
            &["--port", "70000"][..],
            &["--rate-500", "1.5"],
            &["--rate-slow", "nan"],
            &["--messages", "-1"],
            &["--unknown"],
            &["--latency-ms"],
            &["--accounts", "0"],
            &["--accounts", "100001"],
            &["--token-ttl", "0"],
        ] {
            let argv = std::iter::once("inbox-sandbox").chain(bad.iter().copied());
            let err = Args::try_parse_from(argv).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad:?}");
        }
        assert_eq!(
            Args::try_parse_from(["inbox-sandbox", "--help"])
                .unwrap_err()
                .kind(),
            clap::error::ErrorKind::DisplayHelp
        );
    }
}

//! `cargo run -p inbox-sandbox`: starts the sandbox and prints one base URL per marketplace.
//!
//! Options: `--port N` (default 8080; 0 picks a free port), `--conversations N`,
//! `--messages N` (per conversation), `--page-cap N`, `--latency-ms N`, `--rate-429 F`,
//! `--rate-500 F`, `--rate-slow F`, `--slow-ms N`, `--no-allegro-beta`.

use std::time::Duration;

use inbox_sandbox::{Config, Sandbox, Vendor};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::default();
    config.listen.set_port(8080);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--no-allegro-beta" {
            config.allegro_beta = false;
            continue;
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let int = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag}: {value:?} is not a whole number"))
        };
        let rate = || {
            value
                .parse::<f64>()
                .map_err(|_| format!("{flag}: {value:?} is not a number"))
        };
        match flag.as_str() {
            "--port" => config.listen.set_port(int()? as u16),
            "--conversations" => config.conversations = int()?,
            "--messages" => config.messages_per_conversation = int()?,
            "--page-cap" => config.page_cap = Some(int()?),
            "--latency-ms" => config.faults.latency = Duration::from_millis(int()?),
            "--rate-429" => config.faults.rate_429 = rate()?,
            "--rate-500" => config.faults.rate_500 = rate()?,
            "--rate-slow" => config.faults.rate_slow = rate()?,
            "--slow-ms" => config.faults.slow_delay = Duration::from_millis(int()?),
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let sandbox = Sandbox::start(config).await?;
        let c = sandbox.credentials().clone();
        println!("INBOX_ALLEGRO_URL={}", sandbox.url(Vendor::Allegro));
        println!(
            "INBOX_MERCADOLIBRE_URL={}",
            sandbox.url(Vendor::MercadoLibre)
        );
        println!("INBOX_MAGALU_URL={}", sandbox.url(Vendor::Magalu));
        println!("INBOX_OZON_URL={}", sandbox.url(Vendor::Ozon));
        println!("ALLEGRO_TOKEN={}", c.allegro_token);
        println!(
            "MERCADOLIBRE_TOKEN={} MERCADOLIBRE_SELLER_ID={}",
            c.mercadolibre_token, c.mercadolibre_seller_id
        );
        println!("MAGALU_TOKEN={}", c.magalu_token);
        println!(
            "OZON_CLIENT_ID={} OZON_API_KEY={}",
            c.ozon_client_id, c.ozon_api_key
        );
        println!(
            "# control: POST http://{}/_sandbox/messages {{\"marketplace\", \"conversation\", \"text\", \"visible_after_secs\"}}; GET http://{}/_sandbox/requests",
            sandbox.addr(),
            sandbox.addr()
        );
        println!("(Ctrl-C stops it)");
        tokio::signal::ctrl_c().await?;
        drop(sandbox);
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}

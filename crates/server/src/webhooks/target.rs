//! Where a webhook may be delivered: `https` URLs whose host resolves only to public
//! addresses (no loopback, private, link-local, metadata or otherwise reserved one),
//! checked at every delivery, since DNS can change; an operator's `--webhooks-allow-private`
//! lifts the check and also allows plain `http`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::Url;

/// How long resolving a webhook's host may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where to connect for a delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Any address the host resolves to (private addresses allowed).
    Any,
    /// Only these addresses of this host, each checked public.
    Pinned(String, Vec<SocketAddr>),
}

/// What a URL must be before it is stored: `https` (or `http` when private addresses are
/// allowed), with a host and no user name or password; when private addresses are not
/// allowed, no host that is itself a non-public address or `localhost`. The reason it
/// is refused otherwise.
pub fn check_url(url: &str, allow_private: bool) -> Result<Url, String> {
    let parsed = Url::parse(url).map_err(|e| format!("the URL is not valid: {e}"))?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_private => {}
        other => {
            return Err(format!(
                "a webhook URL must be https (this one is {other}); plain http is only for a service started with --webhooks-allow-private"
            ))
        }
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("a webhook URL must not carry a user name or password".into());
    }
    let Some(host) = parsed.host_str().filter(|h| !h.is_empty()) else {
        return Err("a webhook URL needs a host".into());
    };
    if !allow_private {
        if let Some(ip) = literal_ip(host) {
            if !is_public(ip) {
                return Err(format!("{ip} is not a public address"));
            }
        }
        let bare = host.trim_end_matches('.').to_ascii_lowercase();
        if bare == "localhost" || bare.ends_with(".localhost") {
            return Err("localhost is not a public address".into());
        }
    }
    Ok(parsed)
}

/// Checks `url` for a delivery now: [`check_url`], then (unless private addresses are
/// allowed) every address its host resolves to.
pub async fn resolve(url: &str, allow_private: bool) -> Result<(Url, Target), String> {
    let parsed = check_url(url, allow_private)?;
    if allow_private {
        return Ok((parsed, Target::Any));
    }
    let host = parsed.host_str().unwrap_or_default().to_string();
    let port = parsed.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> = match literal_ip(&host) {
        Some(ip) => vec![SocketAddr::new(ip, port)],
        None => tokio::time::timeout(
            RESOLVE_TIMEOUT,
            tokio::net::lookup_host((host.as_str(), port)),
        )
        .await
        .map_err(|_| format!("resolving {host} took over 5 s"))?
        .map_err(|e| format!("resolving {host}: {e}"))?
        .collect(),
    };
    if addrs.is_empty() {
        return Err(format!("{host} resolves to no address"));
    }
    if let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
        return Err(format!(
            "{host} resolves to {}, which is not a public address",
            bad.ip()
        ));
    }
    Ok((parsed, Target::Pinned(host, addrs)))
}

/// The address a host names itself (`[::1]` included).
fn literal_ip(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .ok()
}

/// Whether `ip` is an address on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16: the clouds' metadata service among them
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || a >= 240
        || (a == 100 && (64..128).contains(&b)) // shared address space (carrier NAT)
        || (a == 192 && b == 0 && c == 0) // protocol assignments
        || (a == 198 && (b == 18 || b == 19))) // benchmarking
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    // NAT64 (64:ff9b::/96) embeds an IPv4 address.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [hi, lo] = [s[6], s[7]];
        let v4 = Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
        return is_public_v4(v4);
    }
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local (AWS's fd00:ec2::254 metadata among them)
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || s[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_count_as_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "0.0.0.0",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "::127.0.0.1",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            let ip: IpAddr = private.parse().unwrap();
            assert!(!is_public(ip), "{private} counted as public");
        }
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "64:ff9b::808:808",
        ] {
            let ip: IpAddr = public.parse().unwrap();
            assert!(is_public(ip), "{public} counted as private");
        }
    }

    #[test]
    fn urls_are_refused_for_their_scheme_credentials_and_private_hosts() {
        for (url, why) in [
            ("http://example.com/hook", "https"),
            ("ftp://example.com/hook", "https"),
            ("https://user:pw@example.com/hook", "user name"),
            ("https://127.0.0.1/hook", "not a public"),
            ("https://[::1]:8443/hook", "not a public"),
            ("https://169.254.169.254/latest", "not a public"),
            ("https://localhost/hook", "localhost"),
            ("https://a.localhost./hook", "localhost"),
            ("not a url", "not valid"),
        ] {
            let e = check_url(url, false).unwrap_err();
            assert!(e.contains(why), "{url}: {e}");
        }
        assert!(check_url("https://example.com/hook", false).is_ok());
        assert!(check_url("http://127.0.0.1:9/hook", true).is_ok());
        assert!(check_url("ftp://127.0.0.1:9/hook", true).is_err());
    }

    #[tokio::test]
    async fn a_host_resolving_to_loopback_is_refused_at_delivery() {
        let e = resolve("https://127.0.0.1:1/x", false).await.unwrap_err();
        assert!(e.contains("not a public address"), "{e}");
        let (_, target) = resolve("https://93.184.216.34/x", false).await.unwrap();
        assert_eq!(
            target,
            Target::Pinned(
                "93.184.216.34".into(),
                vec!["93.184.216.34:443".parse().unwrap()]
            )
        );
        let (_, target) = resolve("http://127.0.0.1:1/x", true).await.unwrap();
        assert_eq!(target, Target::Any);
    }
}

//! Outgoing e-mail (invitations). One SMTP relay, configured by URL; without one, messages are
//! logged instead of sent (the caller also keeps them in its outbox table).
//!
//! The URL scheme is ours, not lettre's: lettre's `from_url` reads a bare `smtp://host` as
//! *plaintext*, whereas here a bare `smtp://` means STARTTLS required, so plaintext is never
//! what you get by leaving something out.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use url::{Host, Url};

/// The sender used when `ROLEGATE_SMTP_FROM` is not set.
pub const DEFAULT_FROM: &str = "rolegate <rolegate@localhost>";

/// lettre's async transport applies its timeout to the TCP connect only, so the whole SMTP
/// conversation (greeting, EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA) gets a deadline of its own.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const SEND_DEADLINE: Duration = Duration::from_secs(30);

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtp://`: plaintext greeting, then STARTTLS, which the server must offer (RFC 3207).
    /// Failing that, nothing (no credentials, no message) is sent.
    StartTls,
    /// `smtps://`: TLS from the first byte (RFC 8314 "implicit TLS").
    ImplicitTls,
    /// `smtp://…?tls=none`: no TLS at all; for a sink on the loopback interface.
    None,
}

impl SmtpSecurity {
    fn default_port(self) -> u16 {
        match self {
            SmtpSecurity::StartTls | SmtpSecurity::None => 587,
            SmtpSecurity::ImplicitTls => 465,
        }
    }
}

/// `ROLEGATE_SMTP_URL`: `smtp://[user:pass@]host[:port]` (STARTTLS required, port 587),
/// `smtps://[user:pass@]host[:port]` (implicit TLS, port 465) or
/// `smtp://host:port?tls=none` (plaintext, for a loopback sink). The password never reaches
/// `Debug`, `Display` or an error.
#[derive(Clone)]
pub struct SmtpUrl {
    raw: String,
    redacted: String,
    host: String,
    port: u16,
    security: SmtpSecurity,
    credentials: Option<Credentials>,
}

impl SmtpUrl {
    /// The URL as given, password included.
    pub fn expose(&self) -> &str {
        &self.raw
    }

    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn security(&self) -> SmtpSecurity {
        self.security
    }

    pub fn has_credentials(&self) -> bool {
        self.credentials.is_some()
    }
}

fn invalid(reason: impl Into<String>) -> MailError {
    MailError::InvalidUrl(reason.into())
}

impl FromStr for SmtpUrl {
    type Err = MailError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const SHAPE: &str = "expected smtp://[user:pass@]host[:port] (STARTTLS), \
                             smtps://[user:pass@]host[:port] (implicit TLS) \
                             or smtp://host:port?tls=none (plaintext, loopback sink)";
        // The parser's message never quotes its input, so it cannot leak the password.
        let url = Url::parse(s).map_err(|e| invalid(format!("{e}; {SHAPE}")))?;
        let mut security = match url.scheme() {
            "smtp" => SmtpSecurity::StartTls,
            "smtps" => SmtpSecurity::ImplicitTls,
            other => return Err(invalid(format!("unsupported scheme {other:?}; {SHAPE}"))),
        };
        let host = match url.host() {
            Some(Host::Domain(d)) if !d.is_empty() => d.to_owned(),
            Some(Host::Ipv4(ip)) => ip.to_string(),
            Some(Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(invalid(format!("a host is required; {SHAPE}"))),
        };
        if !matches!(url.path(), "" | "/") {
            return Err(invalid(format!("no path is allowed; {SHAPE}")));
        }
        if url.fragment().is_some() {
            return Err(invalid(format!("no fragment is allowed; {SHAPE}")));
        }
        for (key, value) in url.query_pairs() {
            match (key.as_ref(), value.as_ref(), security) {
                ("tls", "none", SmtpSecurity::StartTls) => security = SmtpSecurity::None,
                // The default, spelled out as lettre's URLs spell it.
                ("tls", "required", SmtpSecurity::StartTls) => {}
                ("tls", "opportunistic", _) => {
                    return Err(invalid(
                        "tls=opportunistic is refused: a man in the middle can strip STARTTLS; \
                         use smtp:// (STARTTLS required) or smtps://",
                    ));
                }
                ("tls", _, SmtpSecurity::ImplicitTls) => {
                    return Err(invalid("smtps:// takes no tls= parameter"));
                }
                ("tls", other, _) => {
                    return Err(invalid(format!(
                        "tls={other:?} is not supported: only tls=none or tls=required"
                    )));
                }
                (other, _, _) => {
                    return Err(invalid(format!("unknown parameter {other:?}; {SHAPE}")));
                }
            }
        }
        // Invitation links are credentials: in clear text they may cross only the loopback
        // interface (a local sink, or a local relay that forwards them over TLS).
        if security == SmtpSecurity::None && !is_loopback(&host) {
            return Err(invalid(format!(
                "tls=none is refused for {host}: invitation links would cross the network in \
                 clear text; use smtp:// (STARTTLS) or smtps://, or a relay on 127.0.0.1"
            )));
        }
        let credentials = match (url.username(), url.password()) {
            ("", None) => None,
            (user, Some(pass)) if !user.is_empty() => {
                if security == SmtpSecurity::None {
                    return Err(invalid(
                        "credentials with tls=none would cross the network in clear text",
                    ));
                }
                Some(Credentials::new(
                    percent_decode(user).ok_or_else(|| invalid("user name is not UTF-8"))?,
                    percent_decode(pass).ok_or_else(|| invalid("password is not UTF-8"))?,
                ))
            }
            _ => {
                return Err(invalid(
                    "give both a user name and a password (user:pass@host), or neither",
                ));
            }
        };
        let mut shown = url.clone();
        if url.password().is_some() {
            // Cannot fail: the URL has a host, or the password would not have parsed.
            let _ = shown.set_password(Some("***"));
        }
        Ok(SmtpUrl {
            raw: s.to_owned(),
            redacted: shown.to_string(),
            port: url.port().unwrap_or(security.default_port()),
            host,
            security,
            credentials,
        })
    }
}

/// `%XX` decoding of a URL's user or password (the `url` crate keeps them encoded).
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let hex = |i: usize| bytes.get(i).and_then(|&b| char::from(b).to_digit(16));
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if let (b'%', Some(high), Some(low)) = (b, hex(i + 1), hex(i + 2)) {
            // Two hex digits: at most 0xFF, so the cast cannot truncate.
            out.push((high * 16 + low) as u8);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SmtpUrl({})", self.redacted)
    }
}

impl fmt::Display for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// Never quotes the URL itself, which may hold a password.
    #[error("invalid SMTP URL: {0}")]
    InvalidUrl(String),
    #[error("invalid sender address {address:?}: {reason}")]
    InvalidFrom { address: String, reason: String },
    #[error("invalid recipient address {address:?}: {reason}")]
    InvalidRecipient { address: String, reason: String },
    #[error("invalid subject: line breaks are not allowed")]
    InvalidSubject,
    #[error("cannot build the message: {0}")]
    Build(#[from] lettre::error::Error),
    #[error("TLS setup for {server} failed: {source}")]
    Tls {
        server: String,
        #[source]
        source: lettre::transport::smtp::Error,
    },
    /// `server` is the redacted URL; lettre's own errors never carry the credentials.
    #[error("SMTP delivery via {server} failed: {source}")]
    Smtp {
        server: String,
        #[source]
        source: lettre::transport::smtp::Error,
    },
    #[error("the SMTP relay {server} did not answer NOOP")]
    Refused { server: String },
    #[error("SMTP delivery via {server} did not finish within {}s", .after.as_secs())]
    Timeout { server: String, after: Duration },
}

/// One plain-text message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMail {
    pub to: String,
    pub subject: String,
    pub text_body: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Accepted by the SMTP relay.
    Sent,
    /// No relay configured: written to the log only.
    LoggedOnly,
}

struct Relay {
    server: String,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

/// Sends through the configured relay, or logs when there is none.
pub struct Mailer {
    from: Mailbox,
    relay: Option<Relay>,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .field("relay", &self.relay.as_ref().map(|r| r.server.as_str()))
            .finish()
    }
}

impl Mailer {
    pub fn new(url: Option<SmtpUrl>, from: &str) -> Result<Mailer, MailError> {
        let from = from
            .parse::<Mailbox>()
            .map_err(|e| MailError::InvalidFrom {
                address: from.to_owned(),
                reason: e.to_string(),
            })?;
        let relay = url.map(relay).transpose()?;
        Ok(Mailer { from, relay })
    }

    /// Whether messages leave the process (`Delivery::Sent`) or are only logged.
    pub fn is_configured(&self) -> bool {
        self.relay.is_some()
    }

    /// For the start-up line: where mail goes, password hidden.
    pub fn mode(&self) -> String {
        match &self.relay {
            Some(relay) => relay.server.clone(),
            None => "log and outbox (no SMTP relay)".to_owned(),
        }
    }

    /// Logs the outcome of [`check`](Self::check): whether invitation e-mails can leave.
    pub async fn report_relay(&self) {
        match self.check().await {
            Ok(()) if self.is_configured() => {
                tracing::info!(relay = %self.mode(), "SMTP relay reachable");
            }
            Ok(()) => {}
            Err(e) => tracing::warn!(
                error = %e,
                "SMTP relay check failed: invitation e-mails will not be delivered (each attempt \
                 is kept in the outbox with its error)"
            ),
        }
    }

    /// Connects to the relay as a send would (TLS, and the login when credentials are given)
    /// without sending anything, so a relay that cannot work — no STARTTLS, a wrong port, a
    /// rejected password — is reported when the service starts, not at the first invitation.
    /// Without a relay there is nothing to check.
    pub async fn check(&self) -> Result<(), MailError> {
        let Some(relay) = &self.relay else {
            return Ok(());
        };
        match tokio::time::timeout(SEND_DEADLINE, relay.transport.test_connection()).await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err(MailError::Refused {
                server: relay.server.clone(),
            }),
            Ok(Err(source)) => Err(MailError::Smtp {
                server: relay.server.clone(),
                source,
            }),
            Err(_elapsed) => Err(MailError::Timeout {
                server: relay.server.clone(),
                after: SEND_DEADLINE,
            }),
        }
    }

    pub async fn send(&self, mail: &OutgoingMail) -> Result<Delivery, MailError> {
        // Built in both cases, so a bad address fails the same way with or without a relay.
        let message = self.message(mail)?;
        let Some(relay) = &self.relay else {
            tracing::info!(
                to = %mail.to,
                subject = %mail.subject,
                body = %mail.text_body,
                "no SMTP relay configured: e-mail logged, not sent"
            );
            metrics::counter!("rolegate_mail_total", "outcome" => "logged").increment(1);
            return Ok(Delivery::LoggedOnly);
        };
        let sent = match tokio::time::timeout(SEND_DEADLINE, relay.transport.send(message)).await {
            Ok(Ok(_response)) => Ok(Delivery::Sent),
            Ok(Err(source)) => Err(MailError::Smtp {
                server: relay.server.clone(),
                source,
            }),
            Err(_elapsed) => Err(MailError::Timeout {
                server: relay.server.clone(),
                after: SEND_DEADLINE,
            }),
        };
        let outcome = if sent.is_ok() { "sent" } else { "failed" };
        metrics::counter!("rolegate_mail_total", "outcome" => outcome).increment(1);
        sent
    }

    fn message(&self, mail: &OutgoingMail) -> Result<Message, MailError> {
        let to = mail
            .to
            .parse::<Mailbox>()
            .map_err(|e| MailError::InvalidRecipient {
                address: mail.to.clone(),
                reason: e.to_string(),
            })?;
        if mail.subject.contains(['\r', '\n']) {
            return Err(MailError::InvalidSubject);
        }
        // lettre picks the transfer encoding: 7bit for short ASCII lines, quoted-printable
        // or base64 otherwise (lines of 76+ characters, such as long invitation links).
        Ok(Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.as_str())
            .header(ContentType::TEXT_PLAIN)
            .body(mail.text_body.clone())?)
    }
}

fn relay(url: SmtpUrl) -> Result<Relay, MailError> {
    let server = url.redacted().to_owned();
    let tls = match url.security {
        SmtpSecurity::None => Tls::None,
        SmtpSecurity::StartTls | SmtpSecurity::ImplicitTls => {
            // Certificates are checked against the webpki (Mozilla) roots with rustls + ring.
            let params = TlsParameters::new(url.host.clone()).map_err(|source| MailError::Tls {
                server: server.clone(),
                source,
            })?;
            if url.security == SmtpSecurity::StartTls {
                Tls::Required(params)
            } else {
                Tls::Wrapper(params)
            }
        }
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(url.host.as_str())
        .port(url.port)
        .tls(tls)
        .timeout(Some(CONNECT_TIMEOUT));
    if let Some(credentials) = url.credentials {
        builder = builder.credentials(credentials);
    }
    Ok(Relay {
        server,
        transport: builder.build(),
    })
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> SmtpUrl {
        s.parse().unwrap()
    }

    #[test]
    fn smtp_scheme_means_starttls_required_on_port_587() {
        let url = parse("smtp://mail.example.com");
        assert_eq!(url.security(), SmtpSecurity::StartTls);
        assert_eq!(url.host(), "mail.example.com");
        assert_eq!(url.port(), 587);
        assert!(!url.has_credentials());
        let explicit = parse("smtp://mail.example.com:2525?tls=required");
        assert_eq!(explicit.security(), SmtpSecurity::StartTls);
        assert_eq!(explicit.port(), 2525);
    }

    #[test]
    fn smtps_scheme_means_implicit_tls_on_port_465() {
        let url = parse("smtps://user:pw@mail.example.com");
        assert_eq!(url.security(), SmtpSecurity::ImplicitTls);
        assert_eq!(url.port(), 465);
        assert!(url.has_credentials());
        assert_eq!(parse("smtps://mail.example.com:10465").port(), 10465);
    }

    #[test]
    fn tls_none_is_plaintext() {
        let url = parse("smtp://127.0.0.1:2525?tls=none");
        assert_eq!(url.security(), SmtpSecurity::None);
        assert_eq!(url.host(), "127.0.0.1");
        assert_eq!(url.port(), 2525);
        assert_eq!(parse("smtp://[::1]?tls=none").host(), "::1");
    }

    #[test]
    fn other_schemes_and_shapes_are_refused() {
        for bad in [
            "http://mail.example.com",
            "submission://mail.example.com",
            "mail.example.com:587",
            "smtp://",
            "smtp://mail.example.com/ehlo-name",
            "smtp://mail.example.com?tls=opportunistic",
            "smtp://mail.example.com?tls=wrapper",
            "smtps://mail.example.com?tls=none",
            "smtp://mail.example.com?timeout=5",
            "smtp://user@mail.example.com",
            "smtp://user:pw@127.0.0.1:2525?tls=none",
            "smtp://mail.example.com:25?tls=none",
            "smtp://10.0.0.5?tls=none",
        ] {
            assert!(bad.parse::<SmtpUrl>().is_err(), "{bad} was accepted");
        }
        let err = "http://x".parse::<SmtpUrl>().unwrap_err().to_string();
        assert!(err.contains("smtps://"), "{err}");
    }

    #[test]
    fn smtp_password_is_hidden_from_debug_display_and_errors() {
        let url = parse("smtps://mailer:s3cr3t-pw@smtp.example.com:465");
        for shown in [
            format!("{url:?}"),
            url.to_string(),
            url.redacted().to_owned(),
        ] {
            assert!(!shown.contains("s3cr3t-pw"), "{shown}");
            assert!(shown.contains("smtp.example.com"), "{shown}");
        }
        assert_eq!(
            url.expose(),
            "smtps://mailer:s3cr3t-pw@smtp.example.com:465"
        );
        let mailer = Mailer::new(Some(url), DEFAULT_FROM).unwrap();
        assert!(!format!("{mailer:?}").contains("s3cr3t-pw"));

        let err = "smtp://mailer:s3cr3t-pw@bad host"
            .parse::<SmtpUrl>()
            .unwrap_err();
        assert!(!err.to_string().contains("s3cr3t-pw"), "{err}");
        assert!(!format!("{err:?}").contains("s3cr3t-pw"), "{err:?}");
    }

    #[test]
    fn percent_encoded_credentials_are_decoded() {
        assert_eq!(
            percent_decode("p%40ss%3Aw%2Fd").as_deref(),
            Some("p@ss:w/d")
        );
        assert_eq!(percent_decode("100%").as_deref(), Some("100%"));
        assert_eq!(percent_decode("%ff"), None);
    }

    fn invitation(to: &str) -> OutgoingMail {
        OutgoingMail {
            to: to.into(),
            subject: "You are invited".into(),
            text_body: "Accept: https://rolegate.example/invitations/accept?token=a=b&x=1".into(),
        }
    }

    #[test]
    fn mailer_can_live_in_shared_app_state() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<Mailer>();
    }

    #[tokio::test]
    async fn without_smtp_mail_is_logged_only() {
        let mailer = Mailer::new(None, DEFAULT_FROM).unwrap();
        assert!(!mailer.is_configured());
        let delivery = mailer.send(&invitation("ada@example.com")).await.unwrap();
        assert_eq!(delivery, Delivery::LoggedOnly);
    }

    #[tokio::test]
    async fn bad_addresses_and_subjects_are_refused_even_without_smtp() {
        assert!(matches!(
            Mailer::new(None, "not an address"),
            Err(MailError::InvalidFrom { .. })
        ));
        let mailer = Mailer::new(None, "Rolegate <noreply@rolegate.example>").unwrap();
        assert!(matches!(
            mailer.send(&invitation("nobody")).await,
            Err(MailError::InvalidRecipient { .. })
        ));
        let mut injected = invitation("ada@example.com");
        injected.subject = "hi\r\nBcc: eve@example.com".into();
        assert!(matches!(
            mailer.send(&injected).await,
            Err(MailError::InvalidSubject)
        ));
    }
}

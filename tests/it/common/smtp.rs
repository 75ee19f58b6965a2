//! A real SMTP server for mail tests: `conformance/smtp_sink.py` (aiosmtpd, pinned in
//! `conformance/requirements-smtp.txt`), one per test, on a free loopback port, plaintext and
//! without STARTTLS. Each message it accepts lands as a file, read back and decoded here.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine;

/// The venv's python, made (or checked) once per process. `scripts/smtp-sink-venv` holds a file
/// lock while it builds, so parallel test processes (nextest) wait for one build.
fn venv_python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = Command::new(root.join("scripts/smtp-sink-venv"))
            .current_dir(root)
            .stdin(Stdio::null())
            .output()
            .expect("run scripts/smtp-sink-venv");
        assert!(
            out.status.success(),
            "scripts/smtp-sink-venv failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8(out.stdout).expect("utf-8 path").trim())
    })
}

/// One received message, decoded.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// SMTP envelope (MAIL FROM / RCPT TO).
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    /// Headers, unfolded, with RFC 2047 encoded words decoded.
    pub to: String,
    pub subject: String,
    /// `Content-Transfer-Encoding` as sent, lower-cased (`7bit` when absent).
    pub transfer_encoding: String,
    /// The body after transfer decoding, with CRLF turned back into LF.
    pub body: String,
    /// The message as it crossed the wire.
    pub raw: String,
}

pub struct SmtpSink {
    child: Child,
    /// Held open: the sink exits when it closes, even if this process dies without `Drop`.
    stdin: Option<ChildStdin>,
    port: u16,
    dir: tempfile::TempDir,
}

impl SmtpSink {
    pub fn start() -> SmtpSink {
        SmtpSink::start_on(0)
    }

    /// A sink on `port` (0: any free port), e.g. one a relay URL already names, to play a relay
    /// that comes back after being down.
    pub fn start_on(port: u16) -> SmtpSink {
        let python = venv_python();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(python)
            .arg(root.join("conformance/smtp_sink.py"))
            .arg(port.to_string())
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start conformance/smtp_sink.py");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        // A thread, so a sink that never gets ready fails the test instead of hanging it.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| String::from("(nothing within 30s)"));
        let port = line
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("SMTP sink did not start: {line:?}")
            });
        SmtpSink {
            child,
            stdin,
            port,
            dir,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Plaintext: the sink offers no STARTTLS.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=none", self.port)
    }

    /// What has arrived so far, in order of arrival.
    pub fn received(&self) -> Vec<ReceivedMail> {
        let mut metas: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .expect("read sink dir")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        metas.sort();
        metas.iter().map(|m| self.load(m)).collect()
    }

    /// Waits until at least `n` messages have arrived; panics if they do not within `timeout`.
    pub async fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} message(s) within {timeout:?}, got {}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn load(&self, meta_path: &Path) -> ReceivedMail {
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(meta_path).expect("read meta")).expect("json");
        let eml = meta["eml"].as_str().expect("eml name");
        let raw = std::fs::read(self.dir.path().join(eml)).expect("read .eml");
        let raw = String::from_utf8(raw).expect("a 7-bit message is UTF-8");
        let (head, body) = raw
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no header/body separator in:\n{raw}"));
        let headers = unfold(head);
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| decode_words(v))
        };
        let transfer_encoding = header("Content-Transfer-Encoding")
            .unwrap_or_else(|| "7bit".into())
            .to_ascii_lowercase();
        let bytes = match transfer_encoding.as_str() {
            "quoted-printable" => decode_quoted_printable(body),
            "base64" => {
                let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
                base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .expect("base64 body")
            }
            _ => body.as_bytes().to_vec(),
        };
        let body = String::from_utf8(bytes)
            .expect("UTF-8 body")
            .replace("\r\n", "\n");
        ReceivedMail {
            mail_from: meta["mail_from"].as_str().unwrap_or_default().to_owned(),
            rcpt_tos: meta["rcpt_tos"]
                .as_array()
                .expect("rcpt_tos")
                .iter()
                .map(|v| v.as_str().expect("address").to_owned())
                .collect(),
            to: header("To").unwrap_or_default(),
            subject: header("Subject").unwrap_or_default(),
            transfer_encoding,
            body,
            raw,
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// RFC 5322 §2.2.3: a line starting with white space continues the previous header field.
fn unfold(head: &str) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push_str(line);
            }
        } else if let Some((name, value)) = line.split_once(':') {
            fields.push((name.trim().to_owned(), value.trim_start().to_owned()));
        }
    }
    fields
}

/// RFC 2045 §6.7: `=XX` is a byte, `=` at a line end is a soft break.
fn decode_quoted_printable(body: &str) -> Vec<u8> {
    let bytes = body.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'=' {
            out.push(bytes[i]);
            i += 1;
        } else if bytes[i + 1..].starts_with(b"\r\n") {
            i += 3;
        } else if bytes[i + 1..].starts_with(b"\n") {
            i += 2;
        } else {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii");
            out.push(u8::from_str_radix(hex, 16).expect("=XX escape"));
            i += 3;
        }
    }
    out
}

/// RFC 2047 encoded words (`=?UTF-8?B?…?=` / `=?UTF-8?Q?…?=`), as lettre writes non-ASCII or long
/// headers. White space between two adjacent encoded words is dropped (§6.2).
fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    let mut last_was_word = false;
    while let Some(start) = rest.find("=?") {
        let (before, word) = rest.split_at(start);
        let Some(end) = word[2..]
            .match_indices("?=")
            .map(|(i, _)| i + 4)
            .find(|&end| word[2..end - 2].matches('?').count() == 2)
        else {
            break;
        };
        let parts: Vec<&str> = word[2..end - 2].splitn(3, '?').collect();
        let decoded = match parts[1].to_ascii_lowercase().as_str() {
            "b" => base64::engine::general_purpose::STANDARD
                .decode(parts[2])
                .expect("base64 word"),
            _ => decode_quoted_printable(&parts[2].replace('_', " ")),
        };
        if !(last_was_word && before.trim().is_empty()) {
            out.push_str(before);
        }
        out.push_str(&String::from_utf8(decoded).expect("UTF-8 word"));
        rest = &word[end..];
        last_was_word = true;
    }
    out.push_str(rest);
    out
}

#[test]
fn mail_quoted_printable_and_encoded_words_decode() {
    assert_eq!(
        decode_quoted_printable("a=3Db&c=\r\nd=C3=A9"),
        "a=b&cdé".as_bytes()
    );
    assert_eq!(
        decode_words("=?utf-8?b?SGFsbMO2?= =?utf-8?q?_W=C3=B6rld?= !"),
        "Hallö Wörld !"
    );
    assert_eq!(decode_words("plain subject"), "plain subject");
}

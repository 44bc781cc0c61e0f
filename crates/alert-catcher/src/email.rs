//! SMTP, as Alertmanager's email notifier uses it: greeting, EHLO, MAIL FROM, RCPT TO, DATA with
//! a MIME message, QUIT. The session's grammar and states are the `mailin` crate's; its I/O is
//! this module's, on Tokio, so a catcher stops when dropped (`mailin-embedded`, the same
//! state machine on a thread pool, has no way to stop).
//!
//! Neither STARTTLS nor AUTH is offered: the local default sets `smtp_require_tls: false`, and
//! Alertmanager authenticates only when the server advertises AUTH, so a username set by mistake
//! cannot send a password in the clear. With `smtp_require_tls: true` Alertmanager refuses to
//! send, naming the missing STARTTLS. The message's headers are read with `mail-parser`
//! (RFC 2047 encoded words included, which Alertmanager uses for non-ASCII values).

use std::net::IpAddr;
use std::sync::Arc;

use mailin::{Action, Handler, Response, SessionBuilder, response};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::{Fields, Notifications, Receiver, Status};

/// The server name in the greeting.
const NAME: &str = "alert-catcher";
/// Longest line taken, data lines included (RFC 5321 allows 1000; Alertmanager's quoted-printable
/// and header lines stay far below): a longer one ends the session instead of filling memory.
const MAX_LINE: u64 = 64 * 1024;

/// The headers `alertmanager.yml`'s email receiver sets, one per field of a notification.
const STATUS_HEADER: &str = "X-Ampel-Status";
const ALERTNAME_HEADER: &str = "X-Ampel-Alertname";
const SERVICE_HEADER: &str = "X-Ampel-Service";
const SUMMARY_HEADER: &str = "X-Ampel-Summary";
const RUNBOOK_HEADER: &str = "X-Ampel-Runbook";
const HEADERS: [&str; 5] = [
    STATUS_HEADER,
    ALERTNAME_HEADER,
    SERVICE_HEADER,
    SUMMARY_HEADER,
    RUNBOOK_HEADER,
];

/// Accepts connections until the task is aborted; each session runs in `sessions`, which end
/// with it.
pub(crate) async fn serve(listener: TcpListener, notifications: Arc<Notifications>) {
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let notifications = notifications.clone();
                    sessions.spawn(async move {
                        if let Err(err) = session(stream, peer.ip(), notifications).await {
                            tracing::warn!(error = %err, %peer, "SMTP session ended early");
                        }
                    });
                }
                Err(err) => tracing::warn!(error = %err, "SMTP accept failed"),
            },
            // Reaps finished sessions so the set does not grow with every mail.
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
}

async fn session(
    stream: TcpStream,
    peer: IpAddr,
    notifications: Arc<Notifications>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut session = SessionBuilder::new(NAME).build(peer, Mail::new(notifications));
    write.write_all(&session.greeting().buffer()?).await?;
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut read)
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)
            .await?;
        if read == 0 {
            return Ok(());
        }
        if !line.ends_with(b"\n") {
            let too_long = Response::custom(500, "Line too long".to_owned());
            write.write_all(&too_long.buffer()?).await?;
            return Ok(());
        }
        let response = session.process(&line);
        match response.action {
            Action::NoReply => {}
            Action::Reply => write.write_all(&response.buffer()?).await?,
            // STARTTLS is never offered, so an upgrade cannot be asked for; close either way.
            Action::Close | Action::UpgradeTls => {
                write.write_all(&response.buffer()?).await?;
                return Ok(());
            }
        }
    }
}

/// One session's mail: the data of the message under way, recorded when it ends.
struct Mail {
    notifications: Arc<Notifications>,
    data: Vec<u8>,
}

impl Mail {
    fn new(notifications: Arc<Notifications>) -> Self {
        Self {
            notifications,
            data: Vec::new(),
        }
    }
}

impl Handler for Mail {
    fn data_start(
        &mut self,
        _domain: &str,
        _from: &str,
        _is8bit: bool,
        _to: &[String],
    ) -> Response {
        self.data.clear();
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        // A relay takes any mail it can store; only the notification in it is optional.
        match notification(&self.data) {
            Ok(fields) => self.notifications.record(Receiver::Email, fields),
            Err(missing) => tracing::warn!(
                missing,
                "mail received, but it is no Alertmanager notification: not recorded"
            ),
        }
        self.data.clear();
        response::OK
    }
}

/// The notification in a message's `X-Ampel-*` headers; `Err` names what is missing.
fn notification(message: &[u8]) -> Result<Fields, String> {
    // Headers it does not know are kept raw unless named: these are text, encoded words decoded.
    let parser = HEADERS
        .into_iter()
        .fold(mail_parser::MessageParser::new(), |parser, name| {
            parser.header_text(name)
        });
    let message = parser.parse_headers(message).ok_or("no message headers")?;
    let header = |name: &str| {
        message
            .header(name)
            .and_then(mail_parser::HeaderValue::as_text)
            .map(str::to_owned)
    };
    let status = header(STATUS_HEADER).ok_or(format!("no {STATUS_HEADER} header"))?;
    let status =
        Status::parse(&status).ok_or(format!("the {STATUS_HEADER} header says {status:?}"))?;
    Ok(Fields {
        status,
        alertname: header(ALERTNAME_HEADER).unwrap_or_default(),
        service: header(SERVICE_HEADER).unwrap_or_default(),
        summary: header(SUMMARY_HEADER).unwrap_or_default(),
        runbook_url: header(RUNBOOK_HEADER).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AlertCatcher;
    use crate::tests::assert_firing_then_resolved;

    /// A message as Alertmanager 0.25's email notifier writes it for `alertmanager.yml`'s email
    /// receiver: its configured headers (values Q-encoded when not ASCII), then Message-Id,
    /// Date, a multipart/alternative Content-Type and an HTML part, dot-stuffed for DATA.
    fn alertmanager_mail(status: &str) -> String {
        [
            "From: alertmanager@ampel.test",
            "To: oncall@ampel.test",
            &format!("Subject: [{}] PollerSlow (worker)", status.to_uppercase()),
            &format!("X-Ampel-Status: {status}"),
            "X-Ampel-Alertname: PollerSlow",
            "X-Ampel-Service: worker",
            "X-Ampel-Summary: =?utf-8?q?Polls_take_long:_r=C3=A9sum=C3=A9?=",
            "X-Ampel-Runbook: https://github.com/ampel/ops/blob/main/RUNBOOK.md#pollerslow",
            "Message-Id: <1733068800000000000.42@alertmanager>",
            "Date: Tue, 01 Dec 2026 17:00:00 +0000",
            "Content-Type: multipart/alternative;  boundary=4f3c",
            "MIME-Version: 1.0",
            "",
            "--4f3c",
            "Content-Transfer-Encoding: quoted-printable",
            "Content-Type: text/html; charset=UTF-8",
            "",
            "<html>PollerSlow</html>",
            "..a line that starts with a dot",
            "--4f3c--",
            ".",
            "",
        ]
        .join("\r\n")
    }

    /// Sends `lines` and returns every reply line, as an SMTP client sees them.
    async fn converse(catcher: &AlertCatcher, lines: &[&str]) -> Vec<String> {
        let stream = TcpStream::connect(catcher.smtp_addr()).await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        for line in lines {
            write.write_all(line.as_bytes()).await.unwrap();
        }
        let mut replies = Vec::new();
        let mut reply = String::new();
        while read.read_line(&mut reply).await.unwrap() > 0 {
            replies.push(reply.trim_end().to_owned());
            reply.clear();
        }
        replies
    }

    /// The session Alertmanager holds (EHLO; no STARTTLS, no AUTH; MAIL, RCPT, DATA, QUIT) is
    /// answered as a relay answers it, and each mail is recorded from its headers.
    #[tokio::test]
    async fn alertmanager_mails_are_received() {
        let any = "127.0.0.1:0".parse().unwrap();
        let catcher = AlertCatcher::start(any, any).await.unwrap();
        for status in ["firing", "resolved"] {
            let mail = alertmanager_mail(status);
            let replies = converse(
                &catcher,
                &[
                    "EHLO localhost\r\n",
                    "MAIL FROM:<alertmanager@ampel.test>\r\n",
                    "RCPT TO:<oncall@ampel.test>\r\n",
                    "DATA\r\n",
                    &mail,
                    "QUIT\r\n",
                ],
            )
            .await;
            let codes: Vec<&str> = replies.iter().map(|reply| &reply[..4]).collect();
            assert_eq!(codes.first(), Some(&"220 "), "{replies:?}");
            assert_eq!(codes.last(), Some(&"221 "), "{replies:?}");
            assert!(
                !replies
                    .iter()
                    .any(|r| r.contains("STARTTLS") || r.contains("AUTH")),
                "{replies:?}"
            );
            assert!(
                replies.iter().all(|r| !r.starts_with(['4', '5'])),
                "{replies:?}"
            );
        }
        assert_firing_then_resolved(
            &catcher,
            Receiver::Email,
            "PollerSlow",
            "worker",
            "Polls take long: résumé",
            "https://github.com/ampel/ops/blob/main/RUNBOOK.md#pollerslow",
        );
    }

    /// A mail without the status header is delivered (a relay takes it) but not recorded; a
    /// command out of order gets SMTP's error.
    #[tokio::test]
    async fn a_plain_mail_is_taken_but_not_recorded() {
        let any = "127.0.0.1:0".parse().unwrap();
        let catcher = AlertCatcher::start(any, any).await.unwrap();
        let replies = converse(
            &catcher,
            &[
                "EHLO localhost\r\n",
                "DATA\r\n",
                "MAIL FROM:<a@ampel.test>\r\n",
                "RCPT TO:<b@ampel.test>\r\n",
                "DATA\r\n",
                "Subject: hello\r\n\r\nhi\r\n.\r\n",
                "QUIT\r\n",
            ],
        )
        .await;
        let errors: Vec<&String> = replies
            .iter()
            .filter(|r| r.starts_with(['4', '5']))
            .collect();
        assert_eq!(
            errors,
            ["503 Bad sequence of commands"],
            "DATA before MAIL: {replies:?}"
        );
        assert!(
            replies.last().is_some_and(|r| r.starts_with("221 ")),
            "{replies:?}"
        );
        assert!(catcher.notifications().is_empty());
        let bad = alertmanager_mail("pending");
        assert_eq!(
            notification(bad.as_bytes()).err().as_deref(),
            Some("the X-Ampel-Status header says \"pending\"")
        );
        assert_eq!(
            notification(b"Subject: hi\r\n\r\n").err().as_deref(),
            Some("no X-Ampel-Status header")
        );
    }
}

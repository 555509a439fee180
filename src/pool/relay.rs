//! A small LMTP/SMTP client: hands one message to a mail server (Dovecot's LMTP in tests) the way an
//! MTA would — greeting, LHLO/EHLO, MAIL, RCPT, DATA with dot-stuffing, QUIT.

use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;

use super::config::RelayProtocol;

const STEP_TIMEOUT: Duration = Duration::from_secs(15);

/// Delivers `message` from `from` to `to` over one fresh connection.
pub async fn deliver(
    protocol: RelayProtocol,
    host: &str,
    port: u16,
    from: &str,
    to: &str,
    message: &[u8],
) -> anyhow::Result<()> {
    let stream = tokio::time::timeout(STEP_TIMEOUT, TcpStream::connect((host, port)))
        .await
        .with_context(|| format!("connecting to {host}:{port} timed out"))?
        .with_context(|| format!("connecting to {host}:{port}"))?;
    stream.set_nodelay(true).ok();
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);

    expect(&mut read, 220, "greeting").await?;
    let hello = match protocol {
        RelayProtocol::Lmtp => "LHLO localpool.otp-harness.test\r\n",
        RelayProtocol::Smtp => "EHLO localpool.otp-harness.test\r\n",
    };
    write.write_all(hello.as_bytes()).await?;
    expect(&mut read, 250, "hello").await?;
    write.write_all(format!("MAIL FROM:<{from}>\r\n").as_bytes()).await?;
    expect(&mut read, 250, "MAIL FROM").await?;
    write.write_all(format!("RCPT TO:<{to}>\r\n").as_bytes()).await?;
    expect(&mut read, 250, "RCPT TO").await?;
    write.write_all(b"DATA\r\n").await?;
    expect(&mut read, 354, "DATA").await?;
    write.write_all(&dot_stuff(message)).await?;
    write.write_all(b".\r\n").await?;
    // LMTP answers once per recipient; there is one.
    expect(&mut read, 250, "end of data").await?;
    write.write_all(b"QUIT\r\n").await?;
    let _ = tokio::time::timeout(Duration::from_secs(1), read_reply(&mut read)).await;
    Ok(())
}

/// Reads one (possibly multi-line) reply and checks its code.
async fn expect(read: &mut BufReader<OwnedReadHalf>, code: u16, step: &str) -> anyhow::Result<()> {
    let (got, text) = tokio::time::timeout(STEP_TIMEOUT, read_reply(read))
        .await
        .with_context(|| format!("mail server did not answer {step}"))??;
    if got != code {
        bail!("mail server refused {step}: {got} {text}");
    }
    Ok(())
}

async fn read_reply(read: &mut BufReader<OwnedReadHalf>) -> anyhow::Result<(u16, String)> {
    let mut text = String::new();
    loop {
        let mut line = String::new();
        if read.read_line(&mut line).await? == 0 {
            bail!("mail server closed the connection");
        }
        let line = line.trim_end();
        let code: u16 = line.get(..3).and_then(|c| c.parse().ok()).context("malformed reply from mail server")?;
        text.push_str(line.get(4..).unwrap_or(""));
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok((code, text));
        }
        text.push(' ');
    }
}

/// CRLF line ends, leading dots doubled, and a final CRLF, as DATA requires.
fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 64);
    let text = String::from_utf8_lossy(message);
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with('.') {
            out.push(b'.');
        }
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // `split` yields an empty last piece for a message ending in a newline: drop its extra CRLF.
    if message.ends_with(b"\n") {
        out.truncate(out.len() - 2);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_doubles_leading_dots_and_normalizes_line_ends() {
        assert_eq!(dot_stuff(b"a\n.b\r\nc\n"), b"a\r\n..b\r\nc\r\n");
        assert_eq!(dot_stuff(b"x"), b"x\r\n");
    }
}

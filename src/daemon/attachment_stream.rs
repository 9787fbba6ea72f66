//! A new ticket's attachment, uploaded as a stream decoded from the mail as it goes: a
//! 20 MiB file (27 MiB of base64 in the mail) is never held decoded in memory.

use crate::mail::body::Attachment;
use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;
use mail_parser::MessageParser;
use std::sync::Arc;

/// Encoded bytes decoded per chunk (a multiple of 4).
const CHUNK: usize = 64 << 10;

/// The decoded content of `attachment` as an upload body; `raw` are the bytes decide
/// parsed (line ends normalized), so its offsets and part id hold.
pub(crate) fn body(raw: Arc<Vec<u8>>, attachment: &Attachment) -> Option<reqwest::Body> {
    match attachment.base64_at.clone() {
        Some(at) if at.start <= at.end && at.end <= raw.len() => Some(reqwest::Body::wrap_stream(
            base64_chunks(raw, at.start, at.end),
        )),
        Some(_) => None,
        // Quoted-printable and plain attachments are rare and small (text): decoded whole.
        None => {
            let msg = MessageParser::default().parse(raw.as_slice())?;
            let content = msg.part(attachment.part)?.contents().to_vec();
            Some(reqwest::Body::from(content))
        }
    }
}

fn lenient() -> GeneralPurpose {
    GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    )
}

/// Decodes `raw[start..end]` as base64 in chunks, white space and line ends skipped.
fn base64_chunks(
    raw: Arc<Vec<u8>>,
    start: usize,
    end: usize,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures::stream::unfold(start, move |mut pos| {
        let raw = Arc::clone(&raw);
        async move {
            if pos >= end {
                return None;
            }
            let mut clean = Vec::with_capacity(CHUNK);
            while pos < end && clean.len() < CHUNK {
                let b = raw[pos];
                pos += 1;
                if b.is_ascii_alphanumeric() || b == b'+' || b == b'/' {
                    clean.push(b);
                } else if b == b'=' {
                    // Padding ends the data.
                    pos = end;
                }
            }
            // Whole quantums only, except at the very end.
            if pos < end {
                let spare = clean.len() % 4;
                pos -= back_off(&raw[..pos], spare);
                clean.truncate(clean.len() - spare);
            }
            if clean.is_empty() {
                return None;
            }
            let decoded = lenient()
                .decode(&clean)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e));
            Some((decoded.map(Bytes::from), pos))
        }
    })
}

/// How many raw bytes back the last `chars` base64 characters began.
fn back_off(raw: &[u8], chars: usize) -> usize {
    let mut seen = 0;
    let mut back = 0;
    for &b in raw.iter().rev() {
        if seen == chars {
            break;
        }
        back += 1;
        if b.is_ascii_alphanumeric() || b == b'+' || b == b'/' {
            seen += 1;
        }
    }
    back
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    async fn decoded(raw: Vec<u8>, start: usize, end: usize) -> Vec<u8> {
        let chunks: Vec<_> = base64_chunks(Arc::new(raw), start, end).collect().await;
        chunks
            .into_iter()
            .flat_map(|c| c.expect("decodes").to_vec())
            .collect()
    }

    #[tokio::test]
    async fn long_base64_with_line_breaks_decodes_across_chunks() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let encoded = base64::engine::general_purpose::STANDARD.encode(&data);
        let wrapped: String = encoded
            .as_bytes()
            .chunks(76)
            .map(|l| format!("{}\r\n", String::from_utf8_lossy(l)))
            .collect();
        let raw = format!("head\r\n\r\n{wrapped}--end").into_bytes();
        let start = 8;
        let end = raw.len() - 5;
        assert_eq!(decoded(raw, start, end).await, data);
    }

    #[tokio::test]
    async fn a_mails_attachment_is_found_and_streamed() {
        let data = b"%PDF-1.4 a small file".to_vec();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
        let raw = format!(
            "From: a@x\r\nSubject: s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
             --b\r\nContent-Type: text/plain\r\n\r\nHello\r\n--b\r\nContent-Type: application/pdf; name=x.pdf\r\n\
             Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=x.pdf\r\n\r\n{b64}\r\n--b--\r\n"
        )
        .into_bytes();
        let msg = MessageParser::default()
            .parse(raw.as_slice())
            .expect("parses");
        let list =
            crate::mail::body::extract(&msg, &crate::mail::content::ContentConfig::default())
                .attachments;
        let at = list[0].base64_at.clone().expect("base64");
        assert_eq!(decoded(raw.clone(), at.start, at.end).await, data);
    }
}

//! HTTP answers read with a byte cap: a broken or hostile server (an endless body, a
//! multi-gigabyte error page) must not take the bridge's memory with it.

/// Why an answer could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error("the answer is larger than {cap} bytes; not read further")]
    TooLarge { cap: usize },
    #[error(transparent)]
    Transport(#[from] reqwest::Error),
}

/// The whole body of `resp`, or an error once it passes `cap` bytes.
pub(crate) async fn read_capped(
    mut resp: reqwest::Response,
    cap: usize,
) -> Result<Vec<u8>, ReadError> {
    if resp.content_length().is_some_and(|n| n > cap as u64) {
        return Err(ReadError::TooLarge { cap });
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > cap {
            return Err(ReadError::TooLarge { cap });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

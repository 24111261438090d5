//! Compression detection by magic bytes and streaming decompression.

use std::io::{self, Cursor, Read};

use containerization_error::{Code, Result, ResultExt};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// The compression wrapped around a tar stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// A plain tar stream.
    None,
    /// gzip (one or more members).
    Gzip,
    /// zstd (one or more frames).
    Zstd,
}

/// Recognises the compression from the first bytes of a stream (4 suffice).
pub fn detect(prefix: &[u8]) -> Compression {
    if prefix.starts_with(&GZIP_MAGIC) {
        Compression::Gzip
    } else if prefix.starts_with(&ZSTD_MAGIC) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Wraps `r` in the decompressor its magic bytes call for; plain data is
/// passed through unchanged.
pub fn open_decompressed(mut r: impl Read + Send + 'static) -> Result<Box<dyn Read + Send>> {
    let mut prefix = [0u8; 4];
    let n =
        read_up_to(&mut r, &mut prefix).context(Code::InternalError, "reading archive header")?;
    // The peeked bytes are put back in front of the rest of the stream.
    let stream = Cursor::new(prefix[..n].to_vec()).chain(r);
    Ok(match detect(&prefix[..n]) {
        Compression::None => Box::new(stream),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(stream)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(stream)
                .context(Code::InternalError, "starting zstd decoder")?,
        ),
    })
}

/// Reads until `buf` is full or the stream ends; short reads are retried
/// because a single `read` may legally return fewer bytes than available.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn roundtrip(data: &[u8], compressed: Vec<u8>, expect: Compression) {
        assert_eq!(detect(&compressed), expect);
        let mut out = Vec::new();
        open_decompressed(Cursor::new(compressed))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn detects_and_decodes_each_format() {
        let data = b"hello archive world".repeat(100);
        roundtrip(&data, data.clone(), Compression::None);

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&data).unwrap();
        roundtrip(&data, gz.finish().unwrap(), Compression::Gzip);

        roundtrip(
            &data,
            zstd::encode_all(&data[..], 3).unwrap(),
            Compression::Zstd,
        );
    }

    #[test]
    fn multi_member_gzip_is_read_to_the_end() {
        let mut all = Vec::new();
        for part in [b"first ".as_slice(), b"second"] {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(part).unwrap();
            all.extend(gz.finish().unwrap());
        }
        roundtrip(b"first second", all, Compression::Gzip);
    }

    #[test]
    fn short_and_empty_streams_pass_through() {
        roundtrip(b"", Vec::new(), Compression::None);
        roundtrip(b"\x1f", b"\x1f".to_vec(), Compression::None);
    }
}
